//! The reactor: one mio `Poll` that reads every log input and watches signals, monitors and
//! supervised processes.
//!
//! Role: read standard input and the stdout/stderr pipes of supervised processes (and followed
//! files, UDP sockets), each into a pipeline of its own (which passes every byte to the output
//! and raises alarms), so the merged stream only ever switches inputs between whole lines; serve
//! `alarm-fd` and `--alarm-socket` when readable and the listen-queue checks on a timer; react to
//! SIGTERM/SIGINT (stop reading, or forward to supervised processes and wait for them,
//! [`shutdown`]), SIGHUP (reopen `--logto`, forward) and SIGCHLD (reap, report crashes,
//! restart). [`run`] is the loop; the rooms: [`source`] (the token table), [`signals`],
//! [`shutdown`] (the stop state machine), [`batch`] (two or more pipes and followed files read
//! in one turn whose matching a helper thread shares).
//! Invariants: a ready input is read at most [`READS_PER_TURN`] times before the others get a
//! turn; the output is written with blocking writes, so a slow output slows the reading
//! (back-pressure) instead of growing a buffer, and a process writing faster than that is slowed
//! by its full pipe, never dropped; a regular file on stdin (`logalarm < file`) cannot be
//! polled, its reader thread simply reads it to the end.
//! Rejected alternative: a reader thread per input — supervised processes and tails are read
//! here (there may be hundreds, each slow); only standard input has a thread (`source::stdin`).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::dispatch::{Dispatcher, LogSink};
use crate::monitor::Monitors;
use crate::output::Output;
use crate::pipeline::{Pipeline, Stats, DEFAULT_CAPACITY};
use crate::report::report;
use crate::rules::Matcher;
use crate::rules::RuleSet;
use crate::source::stdin::Prefetch;
use crate::source::udp::Udp;
use crate::supervise::Supervisor;
use crate::sys::{self, FdKind};

mod batch;
mod shutdown;
mod signals;
mod source;

pub(crate) use shutdown::End;
use shutdown::{Decision, OnTerm, Shutdown};
pub(crate) use signals::Signals;
use source::{Entry, Input, Source, Table};

/// Reads of one input before the others get a turn.
pub(crate) const READS_PER_TURN: usize = 16;
/// Buffer of each supervised process's pipe, tail and UDP input.
/// PERF: the same 1 MiB as stdin: with 256 KiB, `-- cat` of 256 MiB took 0.35-0.61 s against
/// stdin's 0.31-0.46 s; with 1 MiB, 0.30-0.34 s against 0.27-0.47 s (PERF.md). Untouched pages
/// of an idle process's buffer are never resident.
const CHILD_CAPACITY: usize = DEFAULT_CAPACITY;
/// What the read buffers of all log inputs may hold together: with many inputs each gets a
/// share ([`input_capacity`]), so RSS stays bounded (100 supervised processes — 200 pipes — with
/// 1 MiB each made 250 MiB of RSS).
const INPUTS_BUDGET: usize = 32 * 1024 * 1024;
/// The smallest read buffer (and pipe) of an input, however many there are.
const MIN_INPUT_CAPACITY: usize = 64 * 1024;

/// The read buffer (and pipe size) of each of `inputs` log inputs: [`CHILD_CAPACITY`] when
/// [`INPUTS_BUDGET`] allows, else an equal share of it, at least [`MIN_INPUT_CAPACITY`].
fn input_capacity(inputs: usize) -> usize {
    (INPUTS_BUDGET / inputs.max(1)).clamp(MIN_INPUT_CAPACITY, CHILD_CAPACITY)
}
/// How often `--tail` files are read, `--watch-socket` queues checked, processes reaped
/// without a SIGCHLD.
const TAIL_EVERY: Duration = Duration::from_millis(200);
/// How often `--tail-state` is written while the followed files move.
const TAIL_STATE_EVERY: Duration = Duration::from_secs(1);
const BACKLOG_EVERY: Duration = Duration::from_secs(1);
const REAP_EVERY: Duration = Duration::from_secs(1);
/// The longest poll: the timers above are checked at least this often.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Note in `st` where the followed file `t` was passed on to: what its pipeline holds unwritten
/// (a line without its end) is read again after a restart.
/// `false` (nothing noted) when the unwritten bytes began in the file before a rotation.
fn note_tail(
    st: &mut crate::source::tail::TailState,
    t: &crate::source::tail::Tail,
    p: &Pipeline,
) -> bool {
    let pending = p.stats.bytes.saturating_sub(p.stats.passed);
    match t.checkpoint(pending) {
        Some(Some(cp)) => {
            st.note(t.path(), cp);
            true
        }
        Some(None) => false,
        None => true,
    }
}

/// What the reactor drives, besides its inputs.
#[derive(Debug)]
pub(crate) struct Env<'a> {
    pub(crate) output: &'a Output,
    pub(crate) dispatcher: &'a mut Dispatcher,
    pub(crate) signals: Signals,
    /// Supervised processes (empty when none are configured).
    pub(crate) supervisor: &'a mut Supervisor,
    /// Alarm ranks raised when a supervised process crashes (a reload may change them).
    pub(crate) segfault: Vec<u32>,
    /// Alarm ranks raised when a watched listen queue is full.
    pub(crate) backlog: Vec<u32>,
    /// Alarm name → rank, for `--alarm-socket` datagrams.
    pub(crate) names: HashMap<String, u32>,
    /// SIGHUP and `logalarm reload`: the configuration read again and swapped in.
    pub(crate) reload: Option<crate::reload::Reloader>,
    /// How long supervised processes get to stop after a forwarded SIGTERM/SIGINT.
    pub(crate) grace: Duration,
    /// Every closed input's counters are added here.
    pub(crate) totals: &'a mut Stats,
    /// `--metrics`/`--stats`: each input publishes its counters here after each read turn.
    pub(crate) metrics: Option<&'a std::sync::Arc<crate::metrics::Metrics>>,
}

/// Read standard input (`stdin`, unless a `-- CMD` owns it), every supervised process's output
/// and every monitor until the end: end of standard input when nothing else keeps logalarm
/// running, SIGTERM/SIGINT (after supervised processes stopped), or the end of `-- CMD`.
pub(crate) fn run(
    rules: &RuleSet,
    stdin: Option<RawFd>,
    monitors: Monitors,
    cx: Env<'_>,
) -> io::Result<End> {
    let mut r = Reactor::new(rules, stdin, monitors, cx)?;
    let end = loop {
        let now = Instant::now();
        r.start_due(now)?;
        r.poll(now)?;
        if let Some(end) = r.signals(now)? {
            break end;
        }
        r.read_ready()?;
        r.socket_reloads();
        r.timers(now)?;
        r.reap(now)?;
        if let Some(end) = r.check_end(Instant::now()) {
            break end;
        }
    };
    r.close_all()?;
    Ok(end)
}

/// The loop's state (see [`run`]).
struct Reactor<'a> {
    poll: Poll,
    events: Events,
    table: Table,
    rules: RuleSet,
    /// Every input's matcher is a sibling of this one: one set of lazy DFA caches for all the
    /// inputs of this thread (100 busy inputs: 100 sets before, ~1.2 MiB each with 100 rules).
    shared: Matcher,
    /// What logalarm itself writes into the log stream (listen-queue reports): matched like
    /// any input, never read from a descriptor.
    internal: Pipeline,
    cx: Env<'a>,
    backlogs: Vec<crate::monitor::backlog::Backlog>,
    shutdown: Shutdown,
    /// Tails, UDP sockets, alarm sockets or listen-queue watches keep logalarm running after
    /// standard input ends.
    endless: bool,
    /// `--tail-state`: where each followed file was passed on to, written once a
    /// [`TAIL_STATE_EVERY`] while it moves and at the end.
    tail_state: Option<crate::source::tail::TailState>,
    last_tail: Instant,
    last_tail_state: Instant,
    last_backlog: Instant,
    last_reap: Instant,
    /// A process was added: look for ended ones at the next reap.
    reap_now: bool,
    /// Each log input's read buffer, from the number of inputs at start-up
    /// ([`input_capacity`]); inputs added later (a reload's daemons) get the same.
    input_capacity: usize,
    /// `--metrics`/`--stats`: each log input's meter, by token.
    meters: HashMap<usize, crate::metrics::Meter>,
    /// How the reads of many inputs are matched together (`None`: one core, or no rules).
    batch: Option<batch::Batch>,
}

/// The matcher the inputs' matchers are siblings of: with `--metrics`, each rule's lines are
/// all counted (`logalarm_rule_matches_total`), so every rule a line matches is confirmed.
fn shared_matcher(rules: &RuleSet, metrics: bool) -> crate::rules::Matcher {
    let mut m = rules.matcher();
    if metrics {
        m.count_every_rule();
    }
    m
}

impl<'a> Reactor<'a> {
    fn new(
        rules: &RuleSet,
        stdin: Option<RawFd>,
        monitors: Monitors,
        mut cx: Env<'a>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut table = Table::default();
        let signal = table.insert(poll.registry(), Source::Signal)?;
        poll.registry()
            .register(&mut cx.signals.wake, signal, Interest::READABLE)?;
        let endless = monitors.endless();
        if cx.supervisor.has_daemons() {
            let token = table.next_token();
            cx.supervisor
                .spawn_with(mio::Waker::new(poll.registry(), token)?)?;
            table.insert(poll.registry(), Source::Spawner)?;
        }
        // Each supervised process has two pipes (stdout, stderr).
        let inputs = usize::from(stdin.is_some())
            + monitors.nats.len()
            + monitors.tails.len()
            + monitors.udp.len()
            + 2 * cx.supervisor.programs();
        let input_capacity = input_capacity(inputs);
        let mut shared = shared_matcher(rules, cx.metrics.is_some());
        if let Some(fd) = stdin {
            add_stdin(&poll, &mut table, shared.sibling(), fd)?;
        }
        let Monitors {
            fds,
            backlogs,
            tails,
            tail_state,
            udp,
            udp_options,
            sockets,
            nats,
        } = monitors;
        for plan in &nats {
            let token = table.next_token();
            let waker = mio::Waker::new(poll.registry(), token)?;
            let n = crate::nats::NatsIn::start(plan, waker).map_err(io::Error::other)?;
            if let Some(m) = cx.metrics {
                m.attach_nats(n.shown.clone(), n.stats.clone());
            }
            let input = Input::Nats(n);
            let pipeline = Box::new(Pipeline::new(shared.sibling(), DEFAULT_CAPACITY));
            table.insert(poll.registry(), Source::Log { input, pipeline })?;
        }
        for tail in tails {
            let pipeline = Box::new(Pipeline::new(shared.sibling(), input_capacity));
            let input = Input::Tail(tail);
            table.insert(poll.registry(), Source::Log { input, pipeline })?;
        }
        for sock in udp {
            let shown = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
            sock.set_nonblocking(true)?;
            let input = Input::Udp(Udp::new(
                mio::net::UdpSocket::from_std(sock),
                udp_options.clone(),
            ));
            let pipeline = Box::new(Pipeline::new(shared.sibling(), input_capacity));
            table
                .insert(poll.registry(), Source::Log { input, pipeline })
                .map_err(|e| io::Error::new(e.kind(), format!("udp {shown}: {e}")))?;
        }
        for w in fds {
            let fd = w.fd;
            sys::set_nonblocking(fd, true)?;
            table
                .insert(poll.registry(), Source::AlarmFd(w))
                .map_err(|e| {
                    let why = format!("alarm-fd: descriptor {fd} cannot be watched: {e}");
                    io::Error::new(e.kind(), why)
                })?;
        }
        for s in sockets {
            table.insert(poll.registry(), Source::AlarmSocket(s))?;
        }
        let now = Instant::now();
        Ok(Reactor {
            poll,
            events: Events::with_capacity(64),
            table,
            rules: rules.clone(),
            internal: Pipeline::new(shared.sibling(), 64 * 1024),
            shared,
            shutdown: Shutdown::new(cx.grace),
            cx,
            backlogs,
            endless,
            tail_state,
            last_tail: now,
            last_tail_state: now,
            last_backlog: now,
            last_reap: now,
            reap_now: false,
            input_capacity,
            meters: HashMap::new(),
            batch: batch::Batch::new(!rules.is_empty()),
        })
    }

    fn sink(&mut self) -> LogSink<'_> {
        LogSink {
            output: self.cx.output,
            dispatcher: &mut *self.cx.dispatcher,
        }
    }

    /// Start the supervised processes that are due and add their pipes.
    fn start_due(&mut self, now: Instant) -> io::Result<()> {
        let started = self
            .cx
            .supervisor
            .start_due(now)
            .map_err(io::Error::other)?;
        for (slot, out, err) in started {
            for fd in [out, err] {
                self.add_child(fd, slot)?;
            }
            // One that ended before it was taken here sent its SIGCHLD too early.
            self.reap_now = true;
        }
        Ok(())
    }

    fn add_child(&mut self, fd: OwnedFd, slot: usize) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        sys::set_nonblocking(raw, true)?;
        // PERF: as for stdin, a 1 MiB pipe: a fast writer wakes the reactor 16x less often
        // (its share of the budget when there are many inputs).
        let _ = sys::grow_pipe(raw, self.input_capacity);
        let pipeline = Box::new(Pipeline::new(self.shared.sibling(), self.input_capacity));
        let input = Input::Child { fd, slot };
        self.table
            .insert(self.poll.registry(), Source::Log { input, pipeline })?;
        Ok(())
    }

    /// Wait for readiness, at most until the next timer or deadline (not at all when a source
    /// is known to be ready), and mark the sources the poll names.
    fn poll(&mut self, now: Instant) -> io::Result<()> {
        let timeout = if self.table.iter().any(|e| e.ready) {
            Duration::ZERO
        } else {
            self.timeout(now)
        };
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for ev in self.events.iter() {
            if let Some(e) = self.table.get_mut(ev.token().0) {
                e.ready = true;
            }
        }
        Ok(())
    }

    fn timeout(&self, now: Instant) -> Duration {
        let tails = self.table.iter().any(|e| {
            matches!(
                e.source,
                Source::Log {
                    input: Input::Tail(_),
                    ..
                }
            )
        });
        let due = [
            self.cx.supervisor.next_due(),
            self.shutdown
                .deadline()
                .map(|d| d + Duration::from_millis(5)),
            tails.then_some(self.last_tail + TAIL_EVERY),
            (!self.backlogs.is_empty()).then_some(self.last_backlog + BACKLOG_EVERY),
        ];
        let next = due.into_iter().flatten().fold(now + MAX_WAIT, Instant::min);
        next.saturating_duration_since(now)
    }

    /// Act on the signals that came. `Some` when a terminating signal ends the run now.
    fn signals(&mut self, now: Instant) -> io::Result<Option<End>> {
        if let Some(e) = self.table.get_mut(0).filter(|e| e.ready) {
            e.ready = false;
            self.cx.signals.drain();
        }
        if let Some(sig) = self.cx.signals.take_term() {
            match self.shutdown.on_term(now, self.cx.supervisor.running()) {
                OnTerm::Ignore => {}
                OnTerm::EndNow => return Ok(Some(End::Signal)),
                OnTerm::Forward => {
                    self.cx.supervisor.stop(sig);
                    // Only supervised processes' output is read from now on: what was read of
                    // the other log inputs is finished.
                    let others = self
                        .table
                        .tokens_where(|s| matches!(s, Source::Log { .. }) && s.slot().is_none());
                    for t in others {
                        self.close(t)?;
                    }
                }
            }
        }
        for sig in self.cx.signals.take_usr() {
            // Passed on to supervised processes (nginx reopens its logs on SIGUSR1); logalarm
            // itself has no use for them and must not die of them.
            let name = crate::supervise::signal_name(sig);
            if self.cx.supervisor.is_empty() {
                report!(
                    Alarm,
                    "{name} received: ignored (logalarm reopens --logto on SIGHUP)"
                );
            } else {
                report!(
                    Alarm,
                    "{name} received: passed on to the supervised processes"
                );
                self.cx.supervisor.signal_all(sig);
            }
        }
        if self.cx.signals.take_hup() {
            if let Err(e) = self.cx.output.reopen() {
                report!(Alarm, "cannot reopen the log output: {e}");
            }
            self.cx.supervisor.signal_all(libc::SIGHUP);
            let said = self.reload();
            report!(Alarm, "SIGHUP: {said}");
        }
        Ok(None)
    }

    /// `logalarm reload` clients (through an `--alarm-socket`): one reload for all that wait,
    /// each told its outcome.
    fn socket_reloads(&mut self) {
        let waiting = self.table.tokens_where(|s| match s {
            Source::AlarmSocket(a) => a.reload_wanted(),
            _ => false,
        });
        if waiting.is_empty() {
            return;
        }
        let said = self.reload();
        report!(Alarm, "logalarm reload: {said}");
        for t in waiting {
            if let Some(Entry {
                source: Source::AlarmSocket(a),
                ..
            }) = self.table.get_mut(t)
            {
                a.answer_reloads(&said);
            }
        }
    }

    /// Read the configuration again and swap in its rules and alarms; returns what happened,
    /// in one line. Refused (the running configuration kept) on any error.
    pub(super) fn reload(&mut self) -> String {
        let Some(reloader) = self.cx.reload.as_mut() else {
            return "no configuration to reload".to_string();
        };
        let next = match reloader.prepare() {
            Ok(None) => return "configuration unchanged: nothing reloaded".to_string(),
            Ok(Some(n)) => n,
            Err(e) => return format!("reload refused, the running configuration is kept: {e}"),
        };
        let crate::reload::Next { plan, kept } = next;
        let old_names = std::mem::take(&mut self.cx.names);
        let crate::plan::Plan {
            alarms,
            names,
            rules,
            monitors,
            dispatch,
            spool,
            programs,
            observe,
            ..
        } = plan;
        let changed = self
            .cx
            .dispatcher
            .reconfigure(alarms, dispatch.msg_size, |a| {
                crate::app::instance(a, spool.as_ref(), dispatch.freq)
            });
        let changed = match changed {
            Ok(c) => c,
            Err(e) => {
                self.cx.names = old_names;
                return format!("reload refused, the running configuration is kept: {e}");
            }
        };
        // The new rules from the next line on, for every input (what the old matchers counted
        // is published first).
        if let Some(m) = self.cx.metrics {
            for t in self.table.tokens() {
                if let (
                    Some(meter),
                    Some(Entry {
                        source: Source::Log { pipeline, .. },
                        ..
                    }),
                ) = (self.meters.get_mut(&t), self.table.get_mut(t))
                {
                    meter.publish(m, pipeline);
                }
            }
            m.set_rules(observe.rules);
            for meter in self.meters.values_mut() {
                meter.rules_swapped(m);
            }
        }
        let mut from = Vec::new();
        self.shared = shared_matcher(&rules, self.cx.metrics.is_some());
        for t in self.table.tokens() {
            if let Some(Entry {
                source: Source::Log { input, pipeline },
                ..
            }) = self.table.get_mut(t)
            {
                pipeline.set_matcher(self.shared.sibling());
                from.push(format!(
                    "{} at byte {}",
                    source::input_name(input, self.cx.supervisor),
                    pipeline.line_start()
                ));
            }
        }
        self.internal.set_matcher(self.shared.sibling());
        // Monitors raise by rank: ranks follow the new order of the names.
        let by_old: HashMap<u32, &str> = old_names.iter().map(|(n, &r)| (r, n.as_str())).collect();
        for t in self.table.tokens() {
            if let Some(Entry {
                source: Source::AlarmFd(w),
                ..
            }) = self.table.get_mut(t)
            {
                w.remap(&|r| {
                    by_old
                        .get(&r)
                        .and_then(|n| names.get(*n))
                        .copied()
                        .unwrap_or(r)
                });
            }
        }
        let daemons: Vec<String> = programs
            .into_iter()
            .filter_map(|p| match p {
                crate::supervise::Program::Daemon(c) => Some(c),
                _ => None,
            })
            .collect();
        let (started, stopped) = self.cx.supervisor.reconfigure_daemons(&daemons);
        self.rules = rules;
        if self.batch.is_none() {
            // Rules where there were none: many inputs' turns may now share their matching.
            self.batch = batch::Batch::new(!self.rules.is_empty());
        }
        self.cx.segfault = monitors.segfault;
        self.cx.backlog = monitors.backlog;
        self.cx.names = names;
        if let Some(r) = self.cx.reload.as_mut() {
            if let Err(e) = r.applied() {
                report!(Alarm, "reload: {e}");
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        let mut said = format!(
            "reloaded: {} rule(s); alarms kept {}, added {}, changed {}, removed {}; the new rules apply from the next line of each input ({})",
            self.rules.len(),
            changed.kept,
            list(&changed.added),
            list(&changed.changed),
            list(&changed.removed),
            if from.is_empty() { "none".to_string() } else { from.join("; ") }
        );
        if !started.is_empty() || !stopped.is_empty() {
            said.push_str(&format!(
                "; daemons started: {}, stopped: {}",
                list(&started),
                list(&stopped)
            ));
        }
        if !kept.is_empty() {
            said.push_str(&format!(
                "; changed but applied only at the next start: {}",
                kept.join(", ")
            ));
        }
        said
    }

    /// Give every ready source its turn.
    fn read_ready(&mut self) -> io::Result<()> {
        // PERF: two or more pipes or followed files ready at once are read in one turn whose
        // matching a helper thread shares (see `batch`): 100 tailed files with Debian's 2,101
        // rules ran at ~60 % of standard input's speed matched here one read at a time
        // (PERF.md "forty-second run"). One ready alone (a supervised process writes to its
        // stdout, its stderr is quiet) is served here, its large regions shared with its own
        // helper: as a batch of one it was matched on one thread (logwatch's 4,076 rules over
        // `-- cat`: 0.64x standard input's speed, PERF.md "forty-fourth run").
        let many = self.batch.is_some()
            && self
                .table
                .iter()
                .filter(|e| e.ready && e.source.holds())
                .nth(1)
                .is_some();
        for t in self.table.tokens() {
            let open = match self.table.get_mut(t) {
                Some(e) if e.ready && !(many && e.source.holds()) => {
                    self.serve(t, READS_PER_TURN)?
                }
                _ => true,
            };
            if !open {
                self.close(t)?;
            }
        }
        if many {
            for t in self.many_turn()? {
                self.close(t)?;
            }
        }
        Ok(())
    }

    /// Read, match and pass the ready pipes and followed files together (see `batch`).
    /// Returns the tokens of those that ended.
    fn many_turn(&mut self) -> io::Result<Vec<usize>> {
        let Reactor {
            table,
            cx,
            meters,
            batch,
            ..
        } = self;
        let Some(batch) = batch else {
            return Ok(Vec::new());
        };
        let mut sink = LogSink {
            output: cx.output,
            dispatcher: &mut *cx.dispatcher,
        };
        let metrics = cx.metrics;
        let supervisor = &mut *cx.supervisor;
        let mut ready = table.ready_holding();
        if ready.is_empty() {
            return Ok(Vec::new());
        }
        let mut names = Vec::new();
        if metrics.is_some() {
            for r in &ready {
                if !meters.contains_key(&r.token) {
                    names.push((r.token, source::input_name(r.input, supervisor)));
                }
            }
        }
        for r in &mut ready {
            r.pipeline.count_lines(metrics.is_some());
        }
        let turn = batch::TurnCx {
            sink: &mut sink,
            supervisor,
            max: READS_PER_TURN,
        };
        batch.turn(ready, turn, |t, _, p| {
            if let Some(m) = metrics {
                let meter = meters.entry(t).or_insert_with(|| {
                    let name = names.iter().find(|n| n.0 == t).map_or("", |n| n.1.as_str());
                    crate::metrics::Meter::new(m, name)
                });
                meter.publish(m, p);
            }
        })
    }

    /// Serve the source at `t` (log inputs: at most `max` reads). Returns false at its end.
    fn serve(&mut self, t: usize, max: usize) -> io::Result<bool> {
        let Reactor {
            table,
            cx,
            meters,
            poll,
            ..
        } = self;
        let Some(Entry { source, ready }) = table.get_mut(t) else {
            return Ok(true);
        };
        match source {
            Source::Signal => Ok(true),
            Source::Spawner => {
                *ready = false;
                Ok(true)
            }
            Source::Log { input, pipeline } => {
                let mut sink = LogSink {
                    output: cx.output,
                    dispatcher: &mut *cx.dispatcher,
                };
                if cx.metrics.is_some() {
                    pipeline.count_lines(true);
                }
                // PERF: standard input read here is weighed after each turn: short turns, so
                // that a costly matcher's 1 MiB reads leave the reactor within a few MiB.
                let max = match input {
                    Input::StdinPipe(_) => max.min(DIRECT_READS_PER_TURN),
                    _ => max,
                };
                let open = source::read_turn(input, pipeline, ready, &mut sink, cx.supervisor, max);
                if let Input::StdinPipe(d) = input {
                    let bytes = pipeline.stats.bytes;
                    if matches!(open, Ok(true))
                        && d.costly(bytes, DIRECT_MAX_NANOS_PER_BYTE, pipeline.shares_matching())
                    {
                        *input = Input::Stdin(stdin_thread(poll, t, d.fd)?);
                        *ready = true;
                    }
                }
                if let Some(m) = cx.metrics {
                    let meter = meters.entry(t).or_insert_with(|| {
                        crate::metrics::Meter::new(m, &source::input_name(input, cx.supervisor))
                    });
                    meter.publish(m, pipeline);
                }
                open
            }
            Source::AlarmFd(w) => {
                *ready = false;
                Ok(w.serve(cx.dispatcher))
            }
            Source::AlarmSocket(s) => {
                *ready = false;
                s.serve(&cx.names, cx.dispatcher);
                Ok(true)
            }
        }
    }

    /// Finish the source at `t` (a log input's last line without `\n` is a line too) and
    /// forget it.
    fn close(&mut self, t: usize) -> io::Result<()> {
        let Some(source) = self.table.remove(self.poll.registry(), t) else {
            return Ok(());
        };
        if let Source::Log { pipeline, input } = source {
            if let (Input::Tail(tail), Some(st)) = (&input, self.tail_state.as_mut()) {
                // A followed file's unfinished last line is left to the next run, which reads
                // it whole from the checkpoint (written after every input is closed) — unless
                // it began in the file before a rotation: then it is written now, as without
                // a state.
                if !note_tail(st, tail, &pipeline) {
                    return self.finish_log(t, pipeline, input);
                }
                self.account(t, &pipeline);
                return Ok(());
            }
            return self.finish_log(t, pipeline, input);
        }
        Ok(())
    }

    /// Write out what a closed log input's pipeline holds, then account for it.
    fn finish_log(
        &mut self,
        t: usize,
        mut pipeline: Box<Pipeline>,
        mut input: Input,
    ) -> io::Result<()> {
        let grace = self.cx.grace;
        let mut sink = self.sink();
        if let Input::Stdin(p) = &mut input {
            // What its thread already read is written too (SIGTERM mid-stream).
            p.finish(&mut pipeline, &mut sink)?;
        }
        if let Input::Nats(n) = &mut input {
            // What its thread fetched is written and acknowledged; the rest refused.
            n.finish(&mut pipeline, &mut sink, grace)?;
        }
        let inside_line = pipeline.inside_line();
        let res = pipeline.finish(&mut sink);
        sink.flush();
        self.account(t, &pipeline);
        res?;
        if inside_line {
            // Its last line has no `\n`: records held back for its end come now.
            self.cx.output.end_line()?;
        }
        if let (Input::Tail(tail), Some(st)) = (&input, self.tail_state.as_mut()) {
            note_tail(st, tail, &pipeline);
        }
        Ok(())
    }

    /// Add a closed log input's counters to the totals and publish its meter's last figures.
    fn account(&mut self, t: usize, pipeline: &Pipeline) {
        self.cx.totals.add(&pipeline.stats);
        if let (Some(m), Some(mut meter)) = (self.cx.metrics, self.meters.remove(&t)) {
            meter.publish(m, pipeline);
        }
    }

    fn close_all(&mut self) -> io::Result<()> {
        for t in self.table.tokens() {
            self.close(t)?;
        }
        if let Some(st) = self.tail_state.as_mut() {
            st.write();
        }
        let Reactor {
            internal, cx: ctx, ..
        } = self;
        let mut sink = LogSink {
            output: ctx.output,
            dispatcher: &mut *ctx.dispatcher,
        };
        let res = internal.finish(&mut sink);
        ctx.totals.add(&internal.stats);
        res
    }

    /// Followed files become ready, listen queues are checked, when their time comes.
    fn timers(&mut self, now: Instant) -> io::Result<()> {
        if now.saturating_duration_since(self.last_tail) >= TAIL_EVERY {
            let state_due = now.saturating_duration_since(self.last_tail_state) >= TAIL_STATE_EVERY;
            self.last_tail = now;
            for e in self.table.iter_mut() {
                if let Source::Log {
                    input: Input::Tail(t),
                    pipeline,
                } = &e.source
                {
                    e.ready = true;
                    if let (Some(st), true) = (self.tail_state.as_mut(), state_due) {
                        note_tail(st, t, pipeline);
                    }
                }
            }
            if let (Some(st), true) = (self.tail_state.as_mut(), state_due) {
                self.last_tail_state = now;
                st.write();
            }
        }
        if self.backlogs.is_empty()
            || now.saturating_duration_since(self.last_backlog) < BACKLOG_EVERY
        {
            return Ok(());
        }
        self.last_backlog = now;
        for i in 0..self.backlogs.len() {
            let Some((q, max)) = self.backlogs[i].check() else {
                continue;
            };
            let (line, msg) = self.backlogs[i].texts(q, max);
            let Reactor { internal, cx, .. } = self;
            let mut sink = LogSink {
                output: cx.output,
                dispatcher: &mut *cx.dispatcher,
            };
            internal.feed(line.as_bytes(), &mut sink)?;
            for &a in &cx.backlog {
                cx.dispatcher.raise(a, msg.as_bytes());
            }
            cx.dispatcher.flush();
        }
        Ok(())
    }

    /// Reap the supervised processes that ended (on SIGCHLD, or every [`REAP_EVERY`]): read
    /// their last lines, report crashes, note the end of `-- CMD`.
    fn reap(&mut self, now: Instant) -> io::Result<()> {
        let chld = self.cx.signals.take_chld() | std::mem::take(&mut self.reap_now);
        if !chld && now.saturating_duration_since(self.last_reap) < REAP_EVERY {
            return Ok(());
        }
        self.last_reap = now;
        for (slot, pid, status) in self.cx.supervisor.exited() {
            // What it left in its pipes comes before the report (its last lines).
            for t in self.table.tokens_where(|s| s.slot() == Some(slot)) {
                if !self.serve(t, usize::MAX)? {
                    self.close(t)?;
                }
            }
            let exit = self.cx.supervisor.report(slot, pid, status);
            if let Some(msg) = &exit.crash {
                report!(Alarm, "{msg}");
                for &a in &self.cx.segfault {
                    self.cx.dispatcher.raise(a, msg.as_bytes());
                }
                self.cx.dispatcher.flush();
            }
            if exit.main && self.shutdown.on_command_end(exit_code(status), now) {
                self.cx.supervisor.stop(libc::SIGTERM);
            }
        }
        Ok(())
    }

    /// Whether the run is over.
    fn check_end(&mut self, now: Instant) -> Option<End> {
        if !self.shutdown.stopping() {
            let watching = self
                .table
                .iter()
                .any(|e| e.source.is_stdin() || matches!(e.source, Source::AlarmFd(_)));
            let done = self.cx.supervisor.is_empty() && !watching && !self.endless;
            return done.then_some(End::Eof);
        }
        let running = self.cx.supervisor.running();
        let pipes_open = self.table.iter().any(|e| e.source.slot().is_some());
        match self.shutdown.decide(now, running, pipes_open) {
            Decision::Continue => None,
            Decision::Kill { running } => {
                if running > 0 {
                    report!(
                        Alarm,
                        "{running} supervised process(es) still running after {}s: SIGKILL",
                        self.cx.grace.as_secs()
                    );
                }
                self.cx.supervisor.signal_all(libc::SIGKILL);
                None
            }
            Decision::End(end) => Some(end),
        }
    }
}

/// A process's exit status as a shell reports it (128 + N when killed by signal N).
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    }
}

/// Standard input, a pipe, is read by the reactor while reading, matching and passing a byte
/// costs its thread at most this many nanoseconds of CPU (see `source::DirectStdin`), by a
/// thread of its own beyond. PERF: 10 rules (~0.28 ns a byte here) over 256 MiB through `cat |`
/// read here took 0.077-0.080 s against 0.088-0.103 with the thread (the newline count
/// 0.069-0.074); rules100 (~0.38-0.55 ns a byte) 0.118 against 0.099: the thread's copy out of
/// the pipe overlaps matching that costs more (PERF.md "forty-fourth run"). Never while the
/// pipeline's helper shares matching: sagan's 2,052 rules on a Zen 1 CPU took 0.559 s read
/// here against 0.639 with the thread, a third busy thread on two cores (PERF.md
/// "fifty-second run").
const DIRECT_MAX_NANOS_PER_BYTE: f64 = 0.42;

/// Reads of standard input in one turn while the reactor reads it.
const DIRECT_READS_PER_TURN: usize = 4;

/// Standard input `fd`, read by the reactor so far as source `t`, handed to a reader thread
/// (`Prefetch`): out of the poll, the thread's waker in its place. Nothing is lost: what the
/// reactor read is in the pipeline; the thread reads what follows.
fn stdin_thread(poll: &Poll, t: usize, fd: RawFd) -> io::Result<Prefetch> {
    let ctx =
        |e: io::Error| io::Error::new(e.kind(), format!("log input: cannot start its reader: {e}"));
    let _ = poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
    let waker = mio::Waker::new(poll.registry(), Token(t)).map_err(ctx)?;
    Prefetch::start(fd, waker).map_err(ctx)
}

fn add_stdin(poll: &Poll, table: &mut Table, matcher: Matcher, fd: RawFd) -> io::Result<()> {
    let ctx =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("log input: {what}: {e}"));
    if sys::fd_kind(fd).map_err(|e| ctx("fstat", e))? == FdKind::Pollable {
        // PERF: a 1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of the reader and writer.
        let _ = sys::grow_pipe(fd, 1 << 20);
    }
    if sys::is_fifo(fd) {
        // A pipe is read here until matching proves costly (`Reactor::serve` then gives it
        // to a thread).
        let pipeline = Box::new(Pipeline::new(matcher, DEFAULT_CAPACITY));
        let input = Input::StdinPipe(source::DirectStdin::new(fd));
        table
            .insert(poll.registry(), Source::Log { input, pipeline })
            .map_err(|e| ctx("cannot poll it", e))?;
        return Ok(());
    }
    let token: Token = table.next_token();
    let waker = mio::Waker::new(poll.registry(), token).map_err(|e| ctx("cannot poll it", e))?;
    let prefetch = Prefetch::start(fd, waker).map_err(|e| ctx("cannot start its reader", e))?;
    let pipeline = Box::new(Pipeline::new(matcher, DEFAULT_CAPACITY));
    let input = Input::Stdin(prefetch);
    table.insert(poll.registry(), Source::Log { input, pipeline })?;
    Ok(())
}
