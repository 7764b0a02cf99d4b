//! `logalarm replay FILE... [OPTIONS]`: what a configuration would have done on a historical
//! log, in the log's own time.
//!
//! Role: run the live alarm path over files — the same [`Pipeline`] and rule set (so
//! `not-log-alarm`, `log-master-bufsize` and every rule behave exactly as live), the same
//! message cut ([`dispatch::message`]) and the same anti-flood decision
//! ([`AntiFlood::decide`]) — but with a *virtual clock*: each raising line's time is the
//! timestamp it carries (see [`time`]), or its place in the stream at `--rate` lines a second.
//! No action runs: each raised alarm is printed as it would fire or why it would be
//! suppressed, then a summary: lines matched per rule, per alarm raised / fired / suppressed,
//! and a sparkline of each alarm over the log's time.
//!
//! Invariants: output is streamed (memory does not grow with the number of alarms; the
//! timeline coarsens past [`MAX_BUCKETS`]); a raising line without a timestamp takes the time
//! of the nearest line before it that has one (looked for among the 8 lines before it in the
//! same read), else of the last time seen, and is counted. Lines that raise nothing cost what
//! they cost live: their time is never parsed.
//! Not modelled: queue overflow and action failures (no action runs); they are live-only.

pub(crate) mod html;
pub(crate) mod time;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use crate::config;
use crate::dispatch;
use crate::pipeline::{Pipeline, Sink, DEFAULT_CAPACITY};
use time::{Clock, Format};

const USAGE: &str = "usage: logalarm replay FILE... [--ini FILE | alarm options] [--json] [--summary] [--report FILE.html] [--execute] [--rate LINES_PER_S] [--time-format FMT] [--year YYYY]";

/// Most timeline buckets kept per alarm before the timeline coarsens.
const MAX_BUCKETS: usize = 100_000;

/// Columns of a sparkline.
const COLUMNS: usize = 48;

/// Lines looked at before a raising line that has no timestamp.
const LOOK_BACK: usize = 8;

/// What `replay` was asked.
#[derive(Debug, Default)]
struct Opts {
    files: Vec<OsString>,
    json: bool,
    summary: bool,
    rate: Option<f64>,
    format: Option<Format>,
    year: Option<i64>,
    /// `--report FILE.html`.
    report: Option<std::path::PathBuf>,
    /// `--execute`: run the actions of the alarms that fire.
    execute: bool,
    /// Everything else: logalarm's own options (`--ini`, `--alarm`, `--log-alarm`, ...).
    config: Vec<OsString>,
}

/// Run `replay` with `args` (after the word `replay`). Returns the exit status.
pub(crate) fn main(args: &[OsString]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => return fail(format_args!("logalarm replay: {e}\n{USAGE}")),
    };
    let c = match config::parse_args(opts.config.clone()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    for w in &c.warnings {
        crate::report::plain(format_args!("logalarm: warning: {w}"));
    }
    let mut plan = match crate::plan::build(&c) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    for w in plan.warnings() {
        crate::report::plain(format_args!("logalarm: warning: {w}"));
    }
    let rules: Vec<String> = c
        .rules
        .iter()
        .map(|r| format!("{} {}", crate::plan::rule_option(r), r.raw))
        .collect();
    let alarms = plan
        .alarms
        .iter()
        .map(|a| AlarmState {
            name: a.name.clone(),
            kind: a.action.kind(),
            suppress: crate::suppress::Suppress::new(a.policy.clone(), plan.dispatch.freq),
            extra: 0,
            raised: 0,
            fired: 0,
            suppressed: 0,
            timeline: BTreeMap::new(),
        })
        .collect();
    let year = opts.year.unwrap_or_else(current_year);
    // With --execute, standard output is the actions' (as the live log path's), and the
    // report goes to standard error.
    let report_to: Box<dyn Write> = if opts.execute {
        Box::new(io::stderr())
    } else {
        Box::new(io::stdout())
    };
    let report = opts.report.as_ref().map(|_| {
        (
            plan.rules().matcher(),
            Vec::new(),
            vec![BTreeMap::new(); c.rules.len()],
        )
    });
    let mut r = Replay {
        alarms,
        report,
        recorded_line: None,
        msg_size: plan.dispatch.msg_size,
        freq: plan.dispatch.freq,
        clock: Clock::new(year, opts.format.clone()),
        rate: opts.rate,
        base: Instant::now(),
        lines: 0,
        file_start: 0,
        file: String::new(),
        last_time: None,
        first_time: None,
        max_time: None,
        untimed: 0,
        resolution: 1,
        out: io::BufWriter::with_capacity(64 * 1024, report_to),
        exec: None,
        json: opts.json,
        quiet: opts.summary,
        events: 0,
        write_error: None,
        cost: crate::rules::RuleCost::default(),
        timed: plan
            .alarms
            .iter()
            .any(|a| a.policy.digest.is_some() || a.policy.absence.is_some()),
    };
    if opts.execute {
        r.exec = Some(Executor::new(&mut plan));
    }
    let started = Instant::now();
    let mut pipeline = Pipeline::new(plan.rules().matcher(), DEFAULT_CAPACITY);
    pipeline.profile_rules();
    if r.json {
        r.put("{\"events\":[");
    }
    let mut bytes = 0u64;
    for f in &opts.files {
        match r.file_through(&mut pipeline, f) {
            Ok(n) => bytes += n,
            Err(e) => {
                let _ = r.out.flush();
                return fail(format_args!(
                    "logalarm replay: cannot read {}: {e}",
                    f.to_string_lossy()
                ));
            }
        }
    }
    // The end of the log: the events still gathered, what fell due by its last time, and
    // the digests still open.
    let end = r.base + Duration::from_micros(r.max_time.unwrap_or(0).max(0) as u64);
    for rank in 0..r.alarms.len() as u32 {
        r.completed(rank, end, true);
    }
    r.tick_then(end, true);
    if let Some(x) = r.exec.as_mut() {
        x.finish(plan.dispatch.grace);
    }
    let hits = pipeline.rule_hits();
    r.cost = pipeline.rule_cost().unwrap_or_default();
    let elapsed = started.elapsed();
    r.summary(&opts, &rules, &hits, bytes, elapsed);
    if let Some(path) = &opts.report {
        let page = html::page(&r, &opts, &rules, &hits, bytes);
        if let Err(e) = std::fs::write(path, page) {
            let _ = r.out.flush();
            return fail(format_args!(
                "logalarm replay: cannot write --report {}: {e}",
                path.display()
            ));
        }
    }
    if let Err(e) = r.out.flush() {
        r.write_error.get_or_insert(e);
    }
    match r.write_error {
        Some(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Some(e) => fail(format_args!(
            "logalarm replay: cannot write the report: {e}"
        )),
        None => 0,
    }
}

fn fail(e: impl std::fmt::Display) -> i32 {
    crate::report::plain(format_args!("{e}"));
    1
}

fn current_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::civil_from_days(secs.div_euclid(86_400)).0
}

/// `--execute`: the alarms' real actions, run for each alarm that fires (in log order, as
/// fast as they go: virtual time decides what fires, the actions run now).
struct Executor {
    actions: Vec<(String, crate::action::Action)>,
    run: crate::action::Runner,
    ctx: std::sync::Arc<crate::action::Ctx>,
}

impl Executor {
    fn new(plan: &mut crate::plan::Plan) -> Executor {
        let ctx = std::sync::Arc::new(crate::action::Ctx {
            output: std::sync::Arc::new(crate::output::Output::stdout()),
            binsh: plan.binsh.clone(),
            children: std::sync::Arc::new(crate::action::cmd::Children::default()),
            stopping: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
            pids: crate::supervise::Pids::default(),
            mules: crate::supervise::Mules::default(),
            // Replay decides alone: virtual time cannot share a window with a live fleet.
            cluster: None,
        });
        let mut actions: Vec<(String, crate::action::Action)> = std::mem::take(&mut plan.alarms)
            .into_iter()
            .map(|a| (a.name, a.action))
            .collect();
        for (name, a) in &mut actions {
            a.start(name);
        }
        Executor {
            actions,
            run: crate::action::Runner::new(ctx.clone()),
            ctx,
        }
    }

    /// Run alarm `rank`'s action with `msg`, its templates rendered as the decision rendered
    /// them (`alertmanager:` labels; `resolved`: an absence's recovery).
    fn fire(&mut self, rank: u32, msg: &[u8], rendered: &[Vec<u8>], resolved: bool) {
        if let Some((name, action)) = self.actions.get_mut(rank as usize) {
            action.prepare(rendered, resolved);
            let _ = action.fire(name, msg, Instant::now(), &mut self.run);
            self.run.end_batch();
        }
    }

    /// Let running commands and connections end (at most `grace`).
    fn finish(&mut self, grace: Duration) {
        self.run.end_batch();
        for (_, a) in &mut self.actions {
            a.finish(grace);
        }
        self.ctx.children.wait_all(Instant::now() + grace);
    }
}

/// Buffers read ahead of the matching.
const READ_AHEAD: usize = 3;

/// The reader thread: fill free buffers from `input` and pass them on, until the end, an
/// error, or the replay stops taking them.
fn read_ahead(
    mut input: Box<dyn Read + Send>,
    free: &std::sync::mpsc::Receiver<Vec<u8>>,
    full: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
) {
    while let Ok(mut buf) = free.recv() {
        buf.resize(DEFAULT_CAPACITY, 0);
        // Filled whole (a pipe gives 64 KiB a read): large regions are what make matching
        // fast (and large enough ones are matched on two threads).
        let mut n = 0;
        while n < buf.len() {
            match input.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = full.send(Err(e));
                    return;
                }
            }
        }
        if n == 0 {
            return;
        }
        let end = n < buf.len();
        buf.truncate(n);
        if full.send(Ok(buf)).is_err() || end {
            return;
        }
    }
}

/// Files at least this large get a progress bar (on a terminal).
const PROGRESS_MIN: u64 = 64 << 20;

/// A progress bar on standard error for a large file, when standard error is a terminal.
fn progress(f: &OsString) -> Option<indicatif::ProgressBar> {
    // SAFETY: isatty only reads the descriptor's state.
    if f == "-" || unsafe { libc::isatty(2) } != 1 {
        return None;
    }
    let len = std::fs::metadata(f).ok()?.len();
    if len < PROGRESS_MIN {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(f.to_string_lossy().into_owned());
    Some(bar)
}

/// Split `args` into replay's own options, files, and logalarm options.
fn parse(args: &[OsString]) -> Result<Opts, String> {
    let mut o = Opts::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(s) = a.to_str() else {
            o.files.push(a.clone());
            continue;
        };
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (s, None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .and_then(|v| v.to_str().map(str::to_string))
                    .ok_or_else(|| format!("{name} needs a value: {what}")),
            }
        };
        match name {
            "--json" => o.json = true,
            "--execute" => o.execute = true,
            "--report" => o.report = Some(value("FILE.html")?.into()),
            "--summary" => o.summary = true,
            "--rate" => {
                let v = value("LINES_PER_S")?;
                match v.parse::<f64>() {
                    Ok(r) if r > 0.0 && r.is_finite() => o.rate = Some(r),
                    _ => {
                        return Err(format!(
                            "--rate: not a positive number of lines a second: {v}"
                        ))
                    }
                }
            }
            "--time-format" => {
                let v = value("FORMAT")?;
                o.format = Some(Format::parse(&v).map_err(|e| format!("--time-format {v}: {e}"))?);
            }
            "--year" => {
                let v = value("YYYY")?;
                match v.parse::<i64>() {
                    Ok(y) if (1970..=9999).contains(&y) => o.year = Some(y),
                    _ => return Err(format!("--year: not a year: {v}")),
                }
            }
            "--" => return Err("replay supervises no command: nothing may follow --".to_string()),
            "-" => o.files.push(a.clone()),
            _ if s.starts_with('-') => {
                let bare = name.trim_start_matches('-');
                let def = config::lookup(bare)
                    .ok_or_else(|| format!("unknown option: {name} (see logalarm --help)"))?;
                o.config.push(a.clone());
                if def.arity == config::Arity::Value && inline.is_none() {
                    let v = it.next().ok_or_else(|| {
                        format!("option {name} needs a value: {}", def.value_name)
                    })?;
                    o.config.push(v.clone());
                }
            }
            _ => o.files.push(a.clone()),
        }
    }
    if o.files.is_empty() {
        return Err("no log file given (`-` reads standard input)".to_string());
    }
    Ok(o)
}

/// Why a raised line did not fire, as the report shows it.
enum Why {
    /// Anti-flood: (log time of the firing that holds it, per key rather than per message).
    Flood(i64, bool),
    /// Below the threshold: matches so far in the window.
    Below(usize, Option<crate::suppress::Threshold>),
    /// A heartbeat of an `alarm-absence` alarm.
    Heartbeat,
}

use crate::suppress::Held;

/// One alarm's replay state.
#[derive(Debug)]
struct AlarmState {
    name: String,
    kind: &'static str,
    suppress: crate::suppress::Suppress,
    /// Digests and absence messages sent.
    extra: u64,
    raised: u64,
    fired: u64,
    suppressed: u64,
    /// Bucket start (seconds, at the replay's resolution) → (raised, fired).
    timeline: BTreeMap<i64, (u64, u64)>,
}

/// `--report`'s per-rule state: its matcher, the rules of the current line, and per rule the
/// raising lines per timeline bucket.
type RuleTimeline = (crate::rules::Matcher, Vec<u32>, Vec<BTreeMap<i64, u64>>);

/// The state of one replay.
struct Replay {
    alarms: Vec<AlarmState>,
    /// `--report`: a matcher of its own that tells which rules each raising line matched,
    /// and per rule the raising lines per timeline bucket.
    report: Option<RuleTimeline>,
    /// The global line number of the last line whose rules were recorded.
    recorded_line: Option<u64>,
    msg_size: usize,
    freq: Duration,
    clock: Clock,
    rate: Option<f64>,
    /// The virtual clock's zero: log time t is `base + t`.
    base: Instant,
    /// Lines passed so far, over all files.
    lines: u64,
    /// `lines` when the current file began.
    file_start: u64,
    file: String,
    last_time: Option<i64>,
    first_time: Option<i64>,
    max_time: Option<i64>,
    /// Raising lines that carried no timestamp.
    untimed: u64,
    /// Seconds per timeline bucket.
    resolution: i64,
    out: io::BufWriter<Box<dyn Write>>,
    /// `--execute`: each rank's action, and the runner they share.
    exec: Option<Executor>,
    json: bool,
    quiet: bool,
    events: u64,
    write_error: Option<io::Error>,
    /// Confirmation time per rule (known at the end).
    cost: crate::rules::RuleCost,
    /// Some alarm sends messages without a line (`alarm-digest`, `alarm-absence`).
    timed: bool,
}

impl Replay {
    /// Write to the report; the first error is kept and ends the writing, not the replay.
    fn put(&mut self, text: &str) {
        if self.write_error.is_none() {
            if let Err(e) = self.out.write_all(text.as_bytes()) {
                self.write_error = Some(e);
            }
        }
    }

    /// Replay one file (`-`: standard input). Returns its size.
    fn file_through(&mut self, pipeline: &mut Pipeline, f: &OsString) -> io::Result<u64> {
        let input: Box<dyn Read + Send> = if f == "-" {
            if crate::sys::fd_kind(0).is_ok_and(|k| k == crate::sys::FdKind::Pollable) {
                // PERF: as the live path does, a 1 MiB pipe: 16x fewer wake-ups.
                let _ = crate::sys::grow_pipe(0, 1 << 20);
            }
            Box::new(io::stdin())
        } else {
            Box::new(std::fs::File::open(f)?)
        };
        self.file = if f == "-" {
            "stdin".to_string()
        } else {
            f.to_string_lossy().into_owned()
        };
        self.file_start = self.lines;
        let bar = progress(f);
        let mut total = 0u64;
        let mut last = b'\n';
        // PERF: a reader thread fills buffers while this one matches (as the live path's stdin
        // thread does): reading and matching overlap on two cores.
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(READ_AHEAD);
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..=READ_AHEAD {
            let _ = free_tx.send(vec![0u8; DEFAULT_CAPACITY]);
        }
        let reader = std::thread::Builder::new()
            .name("logalarm-replay-read".into())
            .spawn(move || read_ahead(input, &free_rx, &full_tx))?;
        let mut result = Ok(());
        for got in full_rx.iter() {
            let buf = match got {
                Ok(b) => b,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            total += buf.len() as u64;
            if let Some(b) = &bar {
                b.set_position(total);
            }
            if let Some(&b) = buf.last() {
                last = b;
            }
            let mut sink = ReplaySink::new(&buf, self);
            if let Err(e) = pipeline.feed_chunk(&buf, &mut sink) {
                result = Err(e);
                break;
            }
            let _ = free_tx.send(buf);
        }
        drop(full_rx);
        drop(free_tx);
        let _ = reader.join();
        result?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let mut sink = ReplaySink::new(&[], self);
        pipeline.finish(&mut sink)?;
        if last != b'\n' {
            // The last line has no newline: a line all the same.
            self.lines += 1;
        }
        Ok(total)
    }

    /// The time of the line at `line` (global, 0-based) whose text is `msg`; `before` holds
    /// the lines before it in the same read.
    fn time_of(&mut self, msg: &[u8], before: &[u8], line: u64) -> Option<i64> {
        if let Some(rate) = self.rate {
            return Some((line as f64 / rate * 1e6) as i64);
        }
        if let Some(t) = self.clock.parse(msg) {
            return Some(t);
        }
        self.untimed += 1;
        let mut end = before.len();
        for _ in 0..LOOK_BACK {
            if end == 0 {
                break;
            }
            let start = memchr::memrchr(b'\n', &before[..end - 1]).map_or(0, |i| i + 1);
            if let Some(t) = self.clock.parse(&before[start..end]) {
                return Some(t);
            }
            end = start;
        }
        self.last_time
    }

    /// Alarm `rank` raised by the line `line` (1-based in its file) at log time `t`.
    fn raise(&mut self, rank: u32, msg: &[u8], line: u64, t: Option<i64>) {
        if let Some(t) = t {
            self.last_time = Some(t);
            self.first_time = Some(self.first_time.map_or(t, |m| m.min(t)));
            self.max_time = Some(self.max_time.map_or(t, |m| m.max(t)));
        }
        let msg = dispatch::message(msg, self.msg_size);
        let micros = t.unwrap_or(0).max(0) as u64;
        let now = self.base + Duration::from_micros(micros);
        self.tick_all(now);
        let Some(a) = self.alarms.get_mut(rank as usize) else {
            return;
        };
        // alarm-multiline: positions are the replay's line numbers over all files.
        let at = self.file_start + line;
        match a.suppress.gather(msg, (at, at + 1), now) {
            Some(Held::Merged) => {
                a.raised += 1;
                a.suppressed += 1;
                let bucket = t
                    .unwrap_or(0)
                    .div_euclid(1_000_000)
                    .div_euclid(self.resolution);
                a.timeline.entry(bucket).or_default().0 += 1;
            }
            Some(_) => {}
            None => self.decided(rank, msg, line, t, now),
        }
        self.completed(rank, now, false);
    }

    /// Decide the gathered events of alarm `rank` complete at `now` (all when `force`).
    fn completed(&mut self, rank: u32, now: Instant, force: bool) {
        loop {
            let Some(a) = self.alarms.get_mut(rank as usize) else {
                return;
            };
            let Some(g) = a.suppress.complete(now, force) else {
                return;
            };
            let line = g.first.saturating_sub(self.file_start);
            let t = g.started.saturating_duration_since(self.base).as_micros() as i64;
            self.decided(rank, &g.msg, line, Some(t), g.started);
        }
    }

    /// Decide alarm `rank`'s message `msg` (raised by line `line` at log time `t`, `now`),
    /// count and report it.
    fn decided(&mut self, rank: u32, msg: &[u8], line: u64, t: Option<i64>, now: Instant) {
        let Some(a) = self.alarms.get_mut(rank as usize) else {
            return;
        };
        let base = self.base;
        let show =
            move |t: Instant| time::show(t.saturating_duration_since(base).as_micros() as i64);
        let verdict = a.suppress.decide(msg, &a.name, now, &show);
        let (keyed, threshold) = (a.suppress.keyed(), a.suppress.threshold());
        a.raised += 1;
        let fired = verdict.is_ok();
        if fired {
            a.fired += 1;
        } else {
            a.suppressed += 1;
        }
        let bucket = t
            .unwrap_or(0)
            .div_euclid(1_000_000)
            .div_euclid(self.resolution);
        let slot = a.timeline.entry(bucket).or_default();
        slot.0 += 1;
        slot.1 += u64::from(fired);
        let coarsen = a.timeline.len() > MAX_BUCKETS;
        let (msg, reason) = match &verdict {
            Ok(Some(m)) => (m.as_slice(), None),
            Ok(None) => (msg, None),
            Err(Held::Flood(ran)) => {
                let ran_at = ran.saturating_duration_since(self.base).as_micros() as i64;
                (msg, Some(Why::Flood(ran_at, keyed)))
            }
            Err(Held::Below(n)) => (msg, Some(Why::Below(*n, threshold))),
            Err(Held::Heartbeat) => (msg, Some(Why::Heartbeat)),
            // (gather() takes these; decide() never returns them)
            Err(Held::Gathering | Held::Merged) => (msg, None),
        };
        if fired {
            if let Some(x) = self.exec.as_mut() {
                let (rendered, resolved) = self.alarms[rank as usize].suppress.rendered();
                x.fire(rank, msg, rendered, resolved);
            }
        }
        if coarsen {
            self.coarsen();
        }
        if self.quiet {
            return;
        }
        let (name, kind) = {
            let a = &self.alarms[rank as usize];
            (a.name.clone(), a.kind)
        };
        let text = String::from_utf8_lossy(trim_end(msg)).into_owned();
        let when = t.map(time::show).unwrap_or_else(|| "(no time)".to_string());
        if self.json {
            let mut ev = serde_json::json!({
                "time": t.map(time::rfc3339),
                "file": self.file,
                "line": line,
                "alarm": name,
                "action": kind,
                "verdict": if fired { "fire" } else { "suppress" },
                "message": text,
            });
            match reason {
                Some(Why::Flood(ran_at, keyed)) => {
                    let same = if keyed {
                        "same_key_fired_at"
                    } else {
                        "same_message_fired_at"
                    };
                    ev["reason"] = serde_json::json!({
                        "anti_flood": {same: time::rfc3339(ran_at), "alarm_freq_s": self.freq.as_secs_f64()}
                    });
                }
                Some(Why::Heartbeat) => {
                    ev["reason"] = serde_json::json!({"heartbeat": true});
                }
                Some(Why::Below(n, th)) => {
                    ev["reason"] = serde_json::json!({
                        "threshold": {"matches": n, "count": th.map(|t| t.count), "seconds": th.map(|t| t.window.as_secs())}
                    });
                }
                None => {}
            }
            let sep = if self.events == 0 { "" } else { "," };
            self.put(&format!("{sep}\n{ev}"));
        } else {
            let text: String = text.chars().take(300).collect();
            match reason {
                None => self.put(&format!(
                    "{when}  {}:{line}  FIRE      \"{name}\" ({kind}:)  {text}\n",
                    self.file
                )),
                Some(Why::Flood(ran_at, keyed)) => self.put(&format!(
                    "{when}  {}:{line}  SUPPRESS  \"{name}\": anti-flood, same {} fired at {} (alarm-freq {} s)  {text}\n",
                    self.file,
                    if keyed { "key" } else { "message" },
                    time::show(ran_at),
                    self.freq.as_secs_f64()
                )),
                Some(Why::Heartbeat) => self.put(&format!(
                    "{when}  {}:{line}  HEARTBEAT \"{name}\"  {text}\n",
                    self.file
                )),
                Some(Why::Below(n, th)) => self.put(&format!(
                    "{when}  {}:{line}  HOLD      \"{name}\": threshold, {n} of {} match(es) within {} s  {text}\n",
                    self.file,
                    th.map_or(0, |t| t.count),
                    th.map_or(0, |t| t.window.as_secs())
                )),
            }
        }
        self.events += 1;
    }

    /// The messages due by `now` without a line (`alarm-digest`, `alarm-absence`), in the
    /// order they fall due; absences are timed from the first raising line of the replay.
    fn tick_all(&mut self, now: Instant) {
        self.tick_then(now, false);
    }

    /// [`tick_all`](Self::tick_all), then (`last`: the replay's end) the digests not yet due.
    fn tick_then(&mut self, now: Instant, last: bool) {
        if !self.timed {
            return;
        }
        let base = self.base;
        let show =
            move |t: Instant| time::show(t.saturating_duration_since(base).as_micros() as i64);
        for rank in 0..self.alarms.len() {
            loop {
                let a = &mut self.alarms[rank];
                a.suppress.start(now);
                let due_now = a.suppress.tick(&a.name, now, &show);
                let Some((due, msg, kind)) =
                    due_now.or_else(|| last.then(|| a.suppress.flush(&a.name, &show)).flatten())
                else {
                    break;
                };
                a.extra += 1;
                if let Some(x) = self.exec.as_mut() {
                    let (rendered, resolved) = a.suppress.rendered();
                    x.fire(rank as u32, &msg, rendered, resolved);
                }
                self.tell_extra(rank, due, &msg, kind);
            }
        }
    }

    /// Report a digest or an absence of alarm `rank` due at `due`.
    fn tell_extra(&mut self, rank: usize, due: Instant, msg: &[u8], kind: &str) {
        if self.quiet {
            return;
        }
        let t = due.saturating_duration_since(self.base).as_micros() as i64;
        let (name, action) = (self.alarms[rank].name.clone(), self.alarms[rank].kind);
        let text = String::from_utf8_lossy(trim_end(msg)).into_owned();
        if self.json {
            let ev = serde_json::json!({
                "time": time::rfc3339(t), "file": null, "line": null, "alarm": name,
                "action": action, "verdict": "fire", "kind": kind, "message": text,
            });
            let sep = if self.events == 0 { "" } else { "," };
            self.put(&format!("{sep}\n{ev}"));
        } else {
            self.put(&format!(
                "{}  ({kind})  FIRE      \"{name}\" ({action}:)  {text}\n",
                time::show(t)
            ));
        }
        self.events += 1;
    }

    /// `--report`: the rules the raising line `msg` matched, counted at `t`.
    fn record_rules(&mut self, msg: &[u8], t: Option<i64>) {
        let Some((matcher, found, timeline)) = &mut self.report else {
            return;
        };
        matcher.rules_matching(msg, found);
        let bucket = t
            .unwrap_or(0)
            .div_euclid(1_000_000)
            .div_euclid(self.resolution);
        for &r in found.iter() {
            if let Some(tl) = timeline.get_mut(r as usize) {
                *tl.entry(bucket).or_default() += 1;
            }
        }
        if timeline.iter().any(|t| t.len() > MAX_BUCKETS) {
            self.coarsen();
        }
    }

    /// Widen the timeline's buckets (×60) so it stays bounded.
    fn coarsen(&mut self) {
        self.resolution *= 60;
        if let Some((_, _, timeline)) = &mut self.report {
            for tl in timeline.iter_mut() {
                let old = std::mem::take(tl);
                for (k, n) in old {
                    *tl.entry(k.div_euclid(60)).or_default() += n;
                }
            }
        }
        for a in &mut self.alarms {
            let old = std::mem::take(&mut a.timeline);
            for (k, (r, f)) in old {
                let slot = a.timeline.entry(k.div_euclid(60)).or_default();
                slot.0 += r;
                slot.1 += f;
            }
        }
    }

    /// The per-alarm counts over `COLUMNS` columns of the log's time span.
    fn columns(&self, a: &AlarmState) -> (Vec<u64>, Vec<u64>) {
        let raised = self.spread(a.timeline.iter().map(|(&k, &(r, _))| (k, r)), COLUMNS);
        let fired = self.spread(a.timeline.iter().map(|(&k, &(_, f))| (k, f)), COLUMNS);
        (raised, fired)
    }

    /// Timeline buckets spread over `cols` columns of the log's time span.
    fn spread(&self, buckets: impl Iterator<Item = (i64, u64)>, cols: usize) -> Vec<u64> {
        let mut out = vec![0u64; cols];
        let (Some(first), Some(last)) = (self.first_time, self.max_time) else {
            return out;
        };
        let lo = first.div_euclid(1_000_000).div_euclid(self.resolution);
        let hi = last.div_euclid(1_000_000).div_euclid(self.resolution);
        let span = (hi - lo + 1).max(1);
        for (k, n) in buckets {
            let col = ((k - lo).clamp(0, span - 1) * cols as i64 / span) as usize;
            out[col.min(cols - 1)] += n;
        }
        out
    }

    /// Rule `i`'s candidate lines checked and milliseconds spent confirming them.
    fn cost_of(&self, i: usize) -> (u64, f64) {
        let checked = self.cost.checks.get(i).copied().unwrap_or(0);
        let nanos = self.cost.nanos.get(i).copied().unwrap_or(0);
        (checked, nanos as f64 / 1e6)
    }

    fn summary(
        &mut self,
        opts: &Opts,
        rules: &[String],
        hits: &[u64],
        bytes: u64,
        elapsed: Duration,
    ) {
        let span = match (self.first_time, self.max_time) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        if self.json {
            let alarms: Vec<_> = self
                .alarms
                .iter()
                .map(|a| {
                    let (raised, fired) = self.columns(a);
                    serde_json::json!({
                        "name": a.name, "action": a.kind, "raised": a.raised,
                        "fired": a.fired, "suppressed": a.suppressed, "extra": a.extra,
                        "timeline": {"raised": raised, "fired": fired},
                    })
                })
                .collect();
            let rules: Vec<_> = rules
                .iter()
                .zip(hits)
                .enumerate()
                .map(|(i, (r, h))| {
                    let (checked, ms) = self.cost_of(i);
                    serde_json::json!({"rule": r, "lines": h, "checked": checked, "confirm_ms": ms})
                })
                .collect();
            let summary = serde_json::json!({
                "files": opts.files.iter().map(|f| f.to_string_lossy()).collect::<Vec<_>>(),
                "lines": self.lines,
                "bytes": bytes,
                "seconds": elapsed.as_secs_f64(),
                "first": span.map(|s| time::rfc3339(s.0)),
                "last": span.map(|s| time::rfc3339(s.1)),
                "alarm_freq_s": self.freq.as_secs_f64(),
                "untimed": self.untimed,
                "rules": rules,
                "alarms": alarms,
            });
            self.put(&format!("\n],\n\"summary\": {summary}}}\n"));
            return;
        }
        let when = match span {
            Some((a, b)) => format!(
                "log time {} → {} ({})",
                time::show(a),
                time::show(b),
                human_span(b - a)
            ),
            None => "no timestamps".to_string(),
        };
        self.put(&format!(
            "*** replay: {} file(s), {} lines, {} bytes in {:.2} s; {when} ***\n",
            opts.files.len(),
            self.lines,
            bytes,
            elapsed.as_secs_f64()
        ));
        self.put("rules (lines matched, candidate lines checked, time confirming them):\n");
        for (i, (r, h)) in rules.iter().zip(hits).enumerate() {
            let (checked, ms) = self.cost_of(i);
            self.put(&format!("  {h:>10}  {checked:>10}  {ms:>10.3} ms  {r}\n"));
        }
        self.put(&format!(
            "alarms (anti-flood: alarm-freq {} s):\n",
            self.freq.as_secs_f64()
        ));
        for i in 0..self.alarms.len() {
            let a = &self.alarms[i];
            let (raised, fired) = self.columns(a);
            let line = format!(
                "  \"{}\" ({}:)  raised {}, would fire {}, suppressed {}{}\n      raised |{}|\n      fired  |{}|\n",
                a.name,
                a.kind,
                a.raised,
                a.fired,
                a.suppressed,
                if a.extra > 0 {
                    format!(", plus {} digest or absence message(s)", a.extra)
                } else {
                    String::new()
                },
                sparkline(&raised),
                sparkline(&fired)
            );
            self.put(&line);
        }
        if self.untimed > 0 {
            self.put(&format!(
                "raising lines without a timestamp: {} (given the time of the line before; see --time-format, --rate)\n",
                self.untimed
            ));
        }
    }
}

/// `msg` without its line terminator (`\n`, `\r\n`).
fn trim_end(msg: &[u8]) -> &[u8] {
    let msg = msg.strip_suffix(b"\n").unwrap_or(msg);
    msg.strip_suffix(b"\r").unwrap_or(msg)
}

fn human_span(micros: i64) -> String {
    let s = micros / 1_000_000;
    match s {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h {} min", s / 3600, s / 60 % 60),
        s => format!("{} days {} h", s / 86_400, s / 3600 % 24),
    }
}

/// Counts as a line of block characters (a blank for zero).
pub(crate) fn sparkline(v: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = v.iter().copied().max().unwrap_or(0);
    v.iter()
        .map(|&x| match x {
            0 => ' ',
            x => BARS[((x * 8 - 1) / max.max(1)).min(7) as usize],
        })
        .collect()
}

/// The sink of one read: counts lines, places alarms in their file and time.
struct ReplaySink<'a> {
    chunk: &'a [u8],
    /// Where the current region starts in `chunk` (None: in the pipeline's own buffer).
    region: Option<usize>,
    /// Up to where in `chunk` newlines were counted for this region, and how many.
    scan_at: usize,
    scan_lines: u64,
    r: &'a mut Replay,
}

impl<'a> ReplaySink<'a> {
    fn new(chunk: &'a [u8], r: &'a mut Replay) -> ReplaySink<'a> {
        ReplaySink {
            chunk,
            region: None,
            scan_at: 0,
            scan_lines: 0,
            r,
        }
    }

    /// Where `s` starts in the chunk, if it lies in it.
    fn offset(&self, s: &[u8]) -> Option<usize> {
        let base = self.chunk.as_ptr() as usize;
        let at = s.as_ptr() as usize;
        (at >= base && at + s.len() <= base + self.chunk.len()).then(|| at - base)
    }
}

impl Sink for ReplaySink<'_> {
    fn region(&mut self, region: &[u8]) {
        self.region = self.offset(region);
        self.scan_at = self.region.unwrap_or(0);
        self.scan_lines = 0;
    }

    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.r.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        Ok(())
    }

    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        let (before, line) = match (self.region, self.offset(msg)) {
            (Some(_), Some(at)) if at >= self.scan_at => {
                let chunk = self.chunk;
                self.scan_lines +=
                    memchr::memchr_iter(b'\n', &chunk[self.scan_at..at]).count() as u64;
                self.scan_at = at;
                (&chunk[..at], self.r.lines + self.scan_lines)
            }
            _ => (&[][..], self.r.lines + self.scan_lines),
        };
        let t = self.r.time_of(msg, before, line);
        if self.r.recorded_line != Some(line) {
            self.r.recorded_line = Some(line);
            self.r.record_rules(msg, t);
        }
        let in_file = line - self.r.file_start + 1;
        self.r.raise(alarm, msg, in_file, t);
    }
}
