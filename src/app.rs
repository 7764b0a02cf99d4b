//! The whole program behind `main`: options → plan → threads → reactor → shutdown.
//!
//! Role: everything `main.rs` would otherwise hold, as a library function the integration tests
//! can reason about; returns the process exit status. [`run`] reads as the table of contents of
//! a run; each step lives in its own module and receives only the [`Plan`].
//! Invariants: start-up errors are one line on standard error and status 1; a broken log output
//! is one line and status 1 after queued alarms ran. A run that ends normally and raised or
//! lost an alarm ends with one summary line of the counters (bytes, alarms raised, ran,
//! suppressed, dropped); an error exit ends with the error alone.

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;

use crate::action::{cmd::Children, Ctx};
use crate::config;
use crate::dispatch::{Dispatcher, Instance, Overflow, Summary};
use crate::monitor::Monitors;
use crate::output::Output;
use crate::pipeline::Stats;
use crate::plan::{self, Plan};
use crate::reactor::{self, End, Signals};
use crate::report::report;
use crate::spool::Spool;
use crate::supervise::{Mules, Pids, Supervisor};

/// Run logalarm with `args` (without the program name). Returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    if args.first().is_some_and(|a| a == "raise") {
        return crate::raise::main(&args[1..]);
    }
    if let Some(cmd @ ("man" | "completions")) = args.first().and_then(|a| a.to_str()) {
        return crate::docs::main(cmd, &args[1..]);
    }
    if args.first().is_some_and(|a| a == "check") {
        return crate::check::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "reload") {
        return crate::raise::reload_main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "replay") {
        return crate::replay::main(&args[1..]);
    }
    let reload_args = args.clone();
    let config = match config::parse_args(args) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if config.help {
        return print(&config::help_text());
    }
    if config.version {
        return print(&format!(
            "logalarm {} (git {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("LOGALARM_GIT")
        ));
    }
    for w in &config.warnings {
        crate::report::plain(format_args!("logalarm: warning: {w}"));
    }
    // `env`/`unenv`: set while logalarm is one thread (no other can read the environment), so
    // that every child inherits them.
    for (name, value) in &config.env {
        match value {
            Some(v) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
    if config.alarm_list && print(&plan::alarm_list(&config)) != 0 {
        return 1;
    }
    let plan = match plan::build(&config) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if config.alarm_list {
        return 0;
    }
    if config.check_rules {
        let (text, bad) = plan::check_rules(&config);
        return match print(&text) {
            0 if bad => 2,
            st => st,
        };
    }
    run(
        plan,
        Some(crate::reload::Reloader::new(reload_args, config)),
    )
}

fn fail(e: impl std::fmt::Display) -> i32 {
    crate::report::plain(format_args!("{e}"));
    1
}

/// Write `text` to standard output; a closed or broken standard output is status 1, not a
/// panic.
fn print(text: &str) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Run `plan` to its end: open the output and the monitors, start the alarm threads and the
/// supervised processes, run the reactor, then let queued alarms finish.
pub(crate) fn run(mut plan: Plan, reload: Option<crate::reload::Reloader>) -> i32 {
    let output = match open_output(&plan) {
        Ok(o) => Arc::new(o),
        Err(e) => return fail(e),
    };
    protect_secrets(&plan);
    let monitors = match Monitors::open(&plan.monitors, |n| plan.rank(n)) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => return fail(format_args!("logalarm: {e}")),
    };
    // Said once the inputs are open and the signals handled: whoever reads the warning may
    // already stop logalarm cleanly.
    for w in plan.warnings() {
        crate::report::plain(format_args!("logalarm: warning: {w}"));
    }
    // PERF: the thrash probe (about a millisecond a suspicious rule, up to its budget for a
    // thrashing one: 0.19 s of the 0.46 s start-up with Debian's 2,101 rules) runs beside the
    // log path instead of before it; its warnings come when it is done, and exit waits for it.
    let probe = start_probe(&mut plan);
    let cluster = match plan
        .dispatch
        .cluster
        .clone()
        .map(crate::cluster::Cluster::start)
    {
        Some(Ok(c)) => Some(Arc::new(c)),
        Some(Err(e)) => return fail(format_args!("logalarm: alarm-cluster: {e}")),
        None => None,
    };
    let ctx = Ctx {
        output: output.clone(),
        binsh: plan.binsh.clone(),
        children: Arc::new(Children::default()),
        stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        pids: Pids::default(),
        mules: Mules::default(),
        cluster: cluster.clone(),
    };
    let mut supervisor = Supervisor::new(
        plan.programs.clone(),
        plan.binsh.clone(),
        ctx.pids.clone(),
        ctx.mules.clone(),
    );
    let Plan {
        alarms,
        names,
        rules,
        monitors: monitor_plan,
        dispatch,
        spool,
        observe,
        nats_out: plan_nats_out,
        ..
    } = plan;
    let mut instances = Vec::with_capacity(alarms.len());
    for a in alarms {
        match instance(a, spool.as_ref(), dispatch.freq) {
            Ok(i) => instances.push(i),
            Err(e) => return fail(e),
        }
    }
    let publisher = match plan_nats_out.as_ref().map(crate::nats::Publisher::start) {
        Some(Ok(p)) => {
            let p = Arc::new(p);
            output.tee(p.clone());
            Some(p)
        }
        Some(Err(e)) => return fail(format_args!("logalarm: nats-out: {e}")),
        None => None,
    };
    let stop_flag = signals.stop_flag();
    output.stop_after(signals.stop_flag(), dispatch.grace);
    let mut dispatcher = match Dispatcher::start(instances, &dispatch, ctx, signals.stop_flag()) {
        Ok(d) => d,
        Err(e) => return fail(format_args!("logalarm: {e}")),
    };
    let metrics = match start_observing(&observe, &dispatcher, &output) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    if let Some(m) = &metrics {
        m.attach_fleet(
            cluster.as_ref().map(|c| c.stats.clone()),
            publisher.as_ref().map(|p| p.stats.clone()),
        );
        supervisor.observe(m.clone());
    }
    // With `-- CMD`, standard input belongs to the command (logalarm as an entrypoint).
    let stdin = (!supervisor.has_main()).then_some(0);
    let mut totals = Stats::default();
    let cx = reactor::Env {
        output: &output,
        dispatcher: &mut dispatcher,
        signals,
        supervisor: &mut supervisor,
        segfault: monitor_plan.segfault.clone(),
        backlog: monitor_plan.backlog.clone(),
        names: names.clone(),
        reload,
        grace: dispatch.grace,
        totals: &mut totals,
        metrics: metrics.as_ref(),
    };
    let result = reactor::run(&rules, stdin, monitors, cx);
    if result.is_err() {
        output.stop_retrying();
        // Ending on an error: the supervised processes end with logalarm, as after a signal.
        let stopped = supervisor.stop_all(dispatch.grace);
        if stopped > 0 {
            report!(
                Alarm,
                "{stopped} supervised process(es) stopped: logalarm is ending on an error"
            );
        }
    }
    if let Some(p) = probe {
        // The probe runs at the lowest priority: on a saturated machine it is waited for at
        // most PROBE_WAIT (its warnings are then not printed), not for as long as it starves.
        let deadline = std::time::Instant::now() + PROBE_WAIT;
        while !p.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if p.is_finished() {
            // A panic in the probe is the probe's: the log path's result stands.
            let _ = p.join();
        }
    }
    let summary = dispatcher.shutdown(dispatch.grace);
    // The last records, if the stream ended inside a line.
    if let Err(e) = output.end_line() {
        report!(Alarm, "{e}");
    }
    if let Some(p) = &publisher {
        p.close(dispatch.grace, &stop_flag);
        let st = &p.stats;
        report!(
            Alarm,
            "exit: nats-out: {} line(s) published, {} dropped (when_full=drop), {} publish(es) retried",
            st.published.load(std::sync::atomic::Ordering::Relaxed),
            st.dropped.load(std::sync::atomic::Ordering::Relaxed),
            st.retried.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    if let Some(c) = &cluster {
        let st = &c.stats;
        let alone = st.alone.load(std::sync::atomic::Ordering::Relaxed);
        let shared = st.shared.load(std::sync::atomic::Ordering::Relaxed);
        if alone + shared > 0 {
            report!(
                Alarm,
                "exit: alarm-cluster: {shared} decision(s) shared with the fleet ({} of them from its last answer for the same key) in {} round trip(s), {alone} made alone, {} outage(s)",
                st.cached.load(std::sync::atomic::Ordering::Relaxed),
                st.round_trips.load(std::sync::atomic::Ordering::Relaxed),
                st.outages.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
    }
    finish(result, &summary, &totals, dispatch.grace)
}

/// How long exit waits for an unfinished thrash probe.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The thrash probe's warnings, printed from a thread of its own (inline when no thread can be
/// made).
fn start_probe(plan: &mut Plan) -> Option<std::thread::JoinHandle<()>> {
    fn say(rules: &[crate::plan::ProbeRule], cache: Option<&std::path::Path>) {
        for w in crate::plan::probe_warnings(rules, cache) {
            crate::report::plain(format_args!("logalarm: warning: {w}"));
        }
    }
    if plan.probe.is_empty() {
        return None;
    }
    // PERF: the rules are handed over, not copied (Debian's 2,101 rules: 0.7 MB of fresh
    // memory, ~175 page faults, before the first line out).
    let rules = Arc::new(std::mem::take(&mut plan.probe));
    let cache = plan.probe_cache.take();
    let (theirs, their_cache) = (rules.clone(), cache.clone());
    let spawned = std::thread::Builder::new()
        .name("rule-probe".into())
        .spawn(move || {
            // PERF: the probe (0.4 s of CPU for Debian's 2,101 rules) gives way to the log
            // path: on two busy cores it delayed the first line out.
            crate::sys::lower_thread_priority();
            say(&theirs, their_cache.as_deref())
        });
    match spawned {
        Ok(h) => Some(h),
        Err(_) => {
            say(&rules, cache.as_deref());
            None
        }
    }
}

/// The alarm instance of `a` with its definition key: its spool opened when its policy is
/// `spool` (at start-up and for an alarm a reload adds or changes).
pub(crate) fn instance(
    a: crate::plan::AlarmPlan,
    spool: Option<&crate::plan::SpoolPlan>,
    freq: std::time::Duration,
) -> Result<(Instance, String), String> {
    let spool = match (&a.overflow, spool) {
        (Overflow::Spool, Some(sp)) => match Spool::open(&sp.dir, &a.name, sp.max_size, sp.max_age)
        {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                return Err(format!(
                    "invalid alarm-spool: {}: alarm \"{}\": {e}",
                    sp.dir.display(),
                    a.name
                ))
            }
        },
        _ => None,
    };
    Ok((
        Instance {
            name: a.name,
            action: a.action,
            suppress: crate::suppress::Suppress::new(a.policy.clone(), freq),
            overflow: a.overflow,
            spool,
        },
        a.key,
    ))
}

/// `--metrics`, `--stats`: the counters and their servers (bound now: a taken port is a
/// start-up error).
fn start_observing(
    o: &crate::plan::ObservePlan,
    dispatcher: &Dispatcher,
    output: &Arc<Output>,
) -> Result<Option<Arc<crate::metrics::Metrics>>, String> {
    use crate::metrics::{serve, Metrics, Serve};
    if !o.any() {
        return Ok(None);
    }
    let m = Arc::new(Metrics::new(o.rules.clone()));
    m.attach(dispatcher.probe(), output.clone());
    let stats = if o.stats_http {
        Serve::StatsHttp
    } else {
        Serve::StatsRaw
    };
    for (opt, what, addr) in [
        ("metrics", Serve::Prometheus, &o.metrics),
        ("stats", stats, &o.stats),
    ] {
        let Some((addr, shown, origin)) = addr else {
            continue;
        };
        let bound = serve(m.clone(), *addr, what)
            .map_err(|e| format!("invalid {opt}: {shown}: {e}{origin}"))?;
        let url = match what {
            Serve::Prometheus => format!("http://{bound}/metrics"),
            Serve::StatsHttp => format!("http://{bound}/"),
            Serve::StatsRaw => format!("tcp {bound}"),
        };
        crate::report::plain(format_args!("logalarm: {opt} served on {url}"));
    }
    Ok(Some(m))
}

/// `--logto` or standard output.
fn open_output(plan: &Plan) -> std::io::Result<Output> {
    match &plan.logto {
        Some(p) => Output::file(p, plan.logto_follow_symlinks).map_err(|e| {
            std::io::Error::new(e.kind(), format!("invalid logto: {}: {e}", p.display()))
        }),
        None => Ok(Output::stdout()),
    }
}

/// Passwords and keys live in this process's memory: no core dump may carry them.
fn protect_secrets(plan: &Plan) {
    let fleet = plan
        .dispatch
        .cluster
        .as_ref()
        .is_some_and(crate::cluster::ClusterPlan::has_secret);
    if fleet || plan.alarms.iter().any(|a| a.action.may_hold_secrets()) {
        if let Err(e) = crate::sys::set_not_dumpable() {
            report!(Alarm, "cannot make the process non-dumpable: {e}");
        }
    }
}

/// The exit status, after the shutdown reports.
fn finish(
    result: std::io::Result<End>,
    summary: &Summary,
    totals: &Stats,
    grace: std::time::Duration,
) -> i32 {
    if summary.unfinished > 0 {
        report!(
            Alarm,
            "{} action(s) still running after the {}s grace period",
            summary.unfinished,
            grace.as_secs()
        );
    }
    let lost = summary.dropped + summary.discarded;
    if result.is_ok() && totals.alarms + lost > 0 {
        report!(
            Alarm,
            "exit: {} bytes passed, {} candidate lines checked exactly, {} alarms raised, {} ran, {} suppressed by anti-flood, {} dropped, {} discarded at shutdown, {} failed, {} cmd commands started",
            totals.bytes,
            totals.confirmed,
            totals.alarms,
            summary.ran,
            summary.suppressed,
            summary.dropped,
            summary.discarded,
            summary.failed,
            summary.commands
        );
        for a in summary
            .alarms
            .iter()
            .filter(|a| a.raised + a.dropped + a.discarded > 0)
        {
            report!(
                Alarm,
                "exit: \"{}\" ({} alarm, overflow {}): raised {}, ran {}, suppressed {}, dropped {} ({} digest(s) sent), discarded {}, failed {}{}{}",
                a.name,
                a.kind,
                a.overflow,
                a.raised,
                a.ran,
                a.suppressed,
                a.dropped,
                a.digests,
                a.discarded,
                a.failed,
                if a.overflow == "spool" {
                    format!(", spooled {}, kept in the spool {}", a.spooled, a.kept)
                } else {
                    String::new()
                },
                if a.keys_forgotten > 0 {
                    format!(", keys forgotten {} (alarm-keys-max)", a.keys_forgotten)
                } else {
                    String::new()
                }
            );
        }
    }
    match result {
        Ok(End::Command(code)) => code,
        Ok(End::Eof | End::Signal) => 0,
        Err(e) => fail(format_args!("logalarm: {e}")),
    }
}
