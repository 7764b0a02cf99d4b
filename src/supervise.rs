//! Supervised processes: `--attach-daemon "CMD"` and `logalarm [OPTIONS] -- CMD ARGS...`.
//!
//! Role: start each process with its stdout and stderr on pipes (which the reactor reads as log
//! inputs, one pipeline each, so a line of one is never cut by another), restart daemons that
//! exit (with back-off), recognise crashes (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT) and build
//! the `alarm-segfault` message from the last lines the process wrote, forward signals, and stop
//! everything at shutdown (grace period, then SIGKILL). Each process runs in its own process
//! group, so a forwarded signal also reaches what a `sh -c` started.
//! Invariants: nothing here reads or writes log bytes (the reactor does); the list of live
//! process groups is shared with the `signal:` action under a mutex taken only at spawn, exit
//! and signal time, never per line.
//! Daemons are started by a thread of their own ([`Spawner`]) once the reactor has given its
//! waker (mules and `-- CMD` on the reactor, before the first line is read): `posix_spawn` holds its caller until the child has exec'd (0.5-1 ms for
//! `sh`), which, on the reactor, held every log input for 0.1 s while 100 daemons started
//! and for a moment at each restart of a crashing one.
//! Rejected alternative: `waitpid(-1)` — it would also reap `cmd:` children, which their own
//! threads wait for.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::report::report;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) enum Program {
    /// `--attach-daemon`: `$binsh -c CMD`, stdin from /dev/null, restarted when it exits.
    Daemon(String),
    /// `-- CMD ARGS...`: run directly with logalarm's stdin; when it ends, logalarm ends.
    Main(Vec<OsString>),
    /// `--mule CMD`: like a daemon, with its stdin a pipe that `mule:` alarms write to; the
    /// number is its place among the mules (0-based).
    Mule(String, usize),
}

impl Program {
    pub(crate) fn label(&self) -> String {
        match self {
            Program::Daemon(c) | Program::Mule(c, _) => c.clone(),
            Program::Main(argv) => argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Live process groups, for `signal:` alarms.
pub(crate) type Pids = Arc<Mutex<Vec<i32>>>;

/// The stdin pipes of the mules (index = mule number - 1; `None` while one is down), for
/// `mule:` alarms. Non-blocking.
pub(crate) type Mules = Arc<Mutex<Vec<Option<std::process::ChildStdin>>>>;

/// How many bytes of a process's latest output are kept for its crash report.
const TAIL_BYTES: usize = 4096;
/// Lines of that output the report quotes.
const TAIL_LINES: usize = 10;
/// Restarts wait 1 s, doubling up to 60 s.
const RESTART: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
/// A process that ran this long before exiting restarts after the base delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

struct Slot {
    program: Program,
    child: Option<Child>,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: Backoff,
    /// The last bytes it wrote (stdout and stderr, in the order they were read).
    tail: Vec<u8>,
    /// Removed by a reload: stopped, never restarted.
    retired: bool,
    /// Handed to the [`Spawner`]; its child is not here yet.
    starting: bool,
}

impl Slot {
    /// A program to start at `now`.
    fn due(program: Program, now: Instant) -> Slot {
        Slot {
            program,
            child: None,
            started: now,
            restart_at: Some(now),
            backoff: RESTART,
            tail: Vec::new(),
            retired: false,
            starting: false,
        }
    }
}

/// A process that ended.
#[derive(Debug)]
pub(crate) struct Exit {
    /// The `alarm-segfault` message, when it crashed.
    pub(crate) crash: Option<String>,
    /// Whether it was the `-- CMD` process.
    pub(crate) main: bool,
}

/// `-- CMD` could not be started (logalarm then exits).
#[derive(Debug, thiserror::Error)]
#[error("cannot run {label}: {source}")]
pub(crate) struct StartError {
    label: String,
    source: std::io::Error,
}

/// New pipes of a started process: (slot, stdout, stderr).
pub(crate) type Started = (usize, OwnedFd, OwnedFd);

/// Starts daemons off the reactor thread; each start's outcome comes back with its
/// slot, and the reactor is woken to take it.
struct Spawner {
    jobs: mpsc::Sender<(usize, Command)>,
    done: mpsc::Receiver<(usize, std::io::Result<Child>)>,
}

impl Spawner {
    fn start(waker: mio::Waker) -> std::io::Result<Spawner> {
        let (jobs, todo) = mpsc::channel::<(usize, Command)>();
        let (tell, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("logalarm-spawn".into())
            .spawn(move || {
                for (slot, mut cmd) in todo {
                    if tell.send((slot, cmd.spawn())).is_err() {
                        break;
                    }
                    let _ = waker.wake();
                }
            })?;
        Ok(Spawner { jobs, done })
    }
}

pub(crate) struct Supervisor {
    slots: Vec<Slot>,
    binsh: PathBuf,
    pids: Pids,
    mules: Mules,
    stopping: bool,
    /// The signal `stop` forwarded: a process whose start was under way gets it too.
    stop_signal: i32,
    /// Set by [`Supervisor::spawn_with`]; without it processes start on the caller's thread.
    spawner: Option<Spawner>,
    /// `--metrics`/`--stats`: starts and exits are counted there.
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

/// Signals that mean the process crashed.
pub(crate) const CRASH_SIGNALS: [i32; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGFPE,
    libc::SIGILL,
    libc::SIGABRT,
];

pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}

impl Supervisor {
    pub(crate) fn new(
        programs: Vec<Program>,
        binsh: PathBuf,
        pids: Pids,
        mules: Mules,
    ) -> Supervisor {
        let now = Instant::now();
        let n_mules = programs
            .iter()
            .filter(|p| matches!(p, Program::Mule(..)))
            .count();
        {
            let mut m = mules.lock().unwrap_or_else(|p| p.into_inner());
            m.clear();
            m.resize_with(n_mules, || None);
        }
        Supervisor {
            slots: programs
                .into_iter()
                .map(|program| Slot::due(program, now))
                .collect(),
            binsh,
            pids,
            mules,
            stopping: false,
            stop_signal: libc::SIGTERM,
            spawner: None,
            metrics: None,
        }
    }

    /// Start daemons on a thread of their own from now on; `waker` wakes the
    /// reactor when one has started (or failed to), for [`Supervisor::start_due`] to take it.
    pub(crate) fn spawn_with(&mut self, waker: mio::Waker) -> std::io::Result<()> {
        self.spawner = Some(Spawner::start(waker)?);
        Ok(())
    }

    /// A reload's `attach-daemon` lines: a daemon whose line is gone is stopped (SIGTERM to
    /// its process group) and not restarted; a new line starts a daemon; the others are not
    /// touched. Returns (started, stopped) command lines.
    pub(crate) fn reconfigure_daemons(&mut self, wanted: &[String]) -> (Vec<String>, Vec<String>) {
        let mut left: Vec<&String> = wanted.iter().collect();
        let mut stopped = Vec::new();
        for s in &mut self.slots {
            let Program::Daemon(c) = &s.program else {
                continue;
            };
            if s.retired {
                continue;
            }
            if let Some(i) = left.iter().position(|w| *w == c) {
                left.remove(i);
                continue;
            }
            s.retired = true;
            s.restart_at = None;
            if let Some(child) = &s.child {
                // SAFETY: kill has no memory preconditions; the group is our child's own.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
            }
            stopped.push(c.clone());
        }
        let now = Instant::now();
        let started: Vec<String> = left.into_iter().cloned().collect();
        for c in &started {
            self.slots.push(Slot::due(Program::Daemon(c.clone()), now));
        }
        (started, stopped)
    }

    /// Count starts and exits into `m`.
    pub(crate) fn observe(&mut self, m: std::sync::Arc<crate::metrics::Metrics>) {
        self.metrics = Some(m);
    }

    /// The program of `slot`, as the metrics and messages name it.
    pub(crate) fn label_of(&self, slot: usize) -> String {
        self.slots
            .get(slot)
            .map_or_else(String::new, |s| s.program.label())
    }

    /// Programs supervised: daemons, mules and the main command.
    pub(crate) fn programs(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Whether `--attach-daemon` programs are supervised.
    pub(crate) fn has_daemons(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.program, Program::Daemon(_)))
    }

    /// Whether a `-- CMD` is supervised (then logalarm's stdin is the command's).
    pub(crate) fn has_main(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.program, Program::Main(_)))
    }

    /// Processes running or being started.
    pub(crate) fn running(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.child.is_some() || s.starting)
            .count()
    }

    /// Start what is due, and take what the [`Spawner`] started. Failures to start are
    /// reported and retried with back-off, except for `-- CMD`, whose failure is returned
    /// (logalarm then exits). `-- CMD` starts here, on the caller's thread (it is one, and
    /// its failure ends the run), and so do mules (a `mule:` alarm raised by the first lines
    /// read must find its pipe: started on the spawner, one was "not running" for them).
    pub(crate) fn start_due(&mut self, now: Instant) -> Result<Vec<Started>, StartError> {
        let mut started = self.take_spawned(now);
        if self.stopping {
            return Ok(started);
        }
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.child.is_some() || s.starting || s.restart_at.is_none_or(|t| t > now) {
                continue;
            }
            let cmd = self.command(i);
            let main = matches!(self.slots[i].program, Program::Main(_));
            // A mule starts here too: `mule:` alarms of the first lines need its pipe.
            let here = main || matches!(self.slots[i].program, Program::Mule(..));
            let cmd = match (&self.spawner, here) {
                (Some(sp), false) => match sp.jobs.send((i, cmd)) {
                    Ok(()) => {
                        let s = &mut self.slots[i];
                        s.starting = true;
                        s.restart_at = None;
                        continue;
                    }
                    // Its thread is gone (it cannot be, short of a panic): start it here.
                    Err(mpsc::SendError((_, cmd))) => cmd,
                },
                _ => cmd,
            };
            let mut cmd = cmd;
            match cmd.spawn() {
                Ok(child) => started.extend(self.adopt(i, child)),
                Err(e) => {
                    if main {
                        return Err(StartError {
                            label: self.slots[i].program.label(),
                            source: e,
                        });
                    }
                    self.failed(i, &e, now);
                }
            }
        }
        Ok(started)
    }

    /// What the [`Spawner`] started (or failed to) since the last call.
    fn take_spawned(&mut self, now: Instant) -> Vec<Started> {
        let mut started = Vec::new();
        let done: Vec<_> = match &self.spawner {
            Some(sp) => sp.done.try_iter().collect(),
            None => return started,
        };
        for (i, res) in done {
            let Some(s) = self.slots.get_mut(i) else {
                continue;
            };
            s.starting = false;
            match res {
                Ok(child) => started.extend(self.adopt(i, child)),
                Err(e) => self.failed(i, &e, now),
            }
        }
        started
    }

    /// A start of slot `i` failed: report it, retry after the back-off.
    fn failed(&mut self, i: usize, e: &std::io::Error, now: Instant) {
        let s = &mut self.slots[i];
        let wait = s.backoff.next_delay();
        report!(
            Alarm,
            "cannot start daemon \"{}\": {e}; retrying in {}s",
            s.program.label(),
            wait.as_secs()
        );
        s.restart_at = (!self.stopping && !s.retired).then_some(now + wait);
    }

    /// How slot `i`'s program is started: its own process group, stdout and stderr on pipes.
    fn command(&self, i: usize) -> Command {
        let mut cmd = match &self.slots[i].program {
            Program::Daemon(c) => {
                let mut cmd = Command::new(&self.binsh);
                cmd.arg("-c").arg(c).stdin(Stdio::null());
                cmd
            }
            Program::Main(argv) => {
                let mut cmd = Command::new(&argv[0]);
                cmd.args(&argv[1..]).stdin(Stdio::inherit());
                cmd
            }
            Program::Mule(c, _) => {
                let mut cmd = Command::new(&self.binsh);
                cmd.arg("-c").arg(c).stdin(Stdio::piped());
                cmd
            }
        };
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    /// Slot `i`'s process has started: keep it, hand its mule pipe to `mule:` alarms, and
    /// return its output pipes. One that started while logalarm stops (or after a reload
    /// removed its line) gets the stop signal at once.
    fn adopt(&mut self, i: usize, mut child: Child) -> Option<Started> {
        let pid = child.id() as i32;
        let s = &mut self.slots[i];
        let label = s.program.label();
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            report!(
                Alarm,
                "cannot start \"{label}\": its output pipes are missing"
            );
            return None;
        };
        if let (Program::Mule(_, n), Some(stdin)) = (&s.program, child.stdin.take()) {
            // A mule that does not read must never block an alarm thread.
            match crate::sys::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&stdin), true) {
                Ok(_) => {
                    let mut m = self.mules.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(slot) = m.get_mut(*n) {
                        *slot = Some(stdin);
                    }
                }
                Err(e) => report!(Alarm, "mule \"{label}\": its input pipe: {e}"),
            }
        }
        s.child = Some(child);
        s.started = Instant::now();
        s.restart_at = None;
        s.tail.clear();
        if self.stopping || s.retired {
            let sig = if s.retired {
                libc::SIGTERM
            } else {
                self.stop_signal
            };
            let _ = crate::sys::kill(-pid, sig);
        }
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pid);
        if let Some(m) = &self.metrics {
            m.process_started(&label);
        }
        Some((i, OwnedFd::from(out), OwnedFd::from(err)))
    }

    /// Remember what slot `i` wrote (for its crash report).
    pub(crate) fn note_output(&mut self, i: usize, bytes: &[u8]) {
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let keep = TAIL_BYTES - bytes.len();
        if s.tail.len() > keep {
            s.tail.drain(..s.tail.len() - keep);
        }
        s.tail.extend_from_slice(bytes);
    }

    /// Processes that have ended (without blocking).
    pub(crate) fn exited(&mut self) -> Vec<(usize, i32, ExitStatus)> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            let Some(child) = s.child.as_mut() else {
                continue;
            };
            match child.try_wait() {
                Ok(Some(st)) => {
                    out.push((i, child.id() as i32, st));
                    s.child = None;
                }
                Ok(None) => {}
                Err(e) => report!(Alarm, "waiting for {}: {e}", s.program.label()),
            }
        }
        if !out.is_empty() {
            let mut pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
            pids.retain(|p| !out.iter().any(|(_, pid, _)| pid == p));
            let mut mules = self.mules.lock().unwrap_or_else(|p| p.into_inner());
            for (i, _, _) in &out {
                if let Program::Mule(_, n) = self.slots[*i].program {
                    if let Some(m) = mules.get_mut(n) {
                        *m = None;
                    }
                }
            }
        }
        out
    }

    /// Report an exit (after the reactor read what the process left in its pipes): the
    /// `[uwsgi-alarm]` line, the crash message, the restart.
    pub(crate) fn report(&mut self, slot: usize, pid: i32, status: ExitStatus) -> Exit {
        let now = Instant::now();
        let stopping = self.stopping;
        let s = &mut self.slots[slot];
        let label = s.program.label();
        let main = matches!(s.program, Program::Main(_));
        let crash = status
            .signal()
            .filter(|sig| CRASH_SIGNALS.contains(sig))
            .map(|sig| crash_message(pid, &label, sig, status.core_dumped(), &s.tail));
        let how = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!(
                "killed by signal {sig} ({}{})",
                signal_name(sig),
                if status.core_dumped() {
                    ", core dumped"
                } else {
                    ""
                }
            ),
            _ => format!("ended ({status})"),
        };
        if let Some(m) = &self.metrics {
            let short = match (status.code(), status.signal()) {
                (Some(c), _) => format!("status {c}"),
                (None, Some(sig)) => format!("signal {sig} ({})", signal_name(sig)),
                _ => "other".to_string(),
            };
            m.process_exited(&label, &short);
        }
        let what = match s.program {
            Program::Main(_) => "command",
            Program::Mule(..) => "mule",
            Program::Daemon(_) => "daemon",
        };
        if main || stopping || s.retired {
            report!(Alarm, "{what} \"{label}\" (pid {pid}) {how}");
        } else {
            if now.duration_since(s.started) >= HEALTHY_RUN {
                s.backoff.reset();
            }
            let wait = s.backoff.next_delay();
            report!(
                Alarm,
                "{what} \"{label}\" (pid {pid}) {how}; restarting in {}s",
                wait.as_secs()
            );
            s.restart_at = Some(now + wait);
        }
        Exit { crash, main }
    }

    /// Send `sig` to every live process group.
    pub(crate) fn signal_all(&self, sig: i32) {
        for s in &self.slots {
            if let Some(c) = &s.child {
                let _ = crate::sys::kill(-(c.id() as i32), sig);
            }
        }
    }

    /// Stop restarting; forward `sig`.
    pub(crate) fn stop(&mut self, sig: i32) {
        self.stopping = true;
        self.stop_signal = sig;
        self.signal_all(sig);
    }

    /// logalarm ends on an error (its log output is gone, say): its processes must not outlive
    /// it. SIGTERM to every process group, SIGKILL to what is left after `grace`, then at most
    /// a second more to reap them. Returns how many were stopped.
    pub(crate) fn stop_all(&mut self, grace: std::time::Duration) -> usize {
        let running = self.running();
        if running == 0 {
            return 0;
        }
        self.stop(libc::SIGTERM);
        let mut deadline = Instant::now() + grace;
        let mut killed = false;
        loop {
            // Processes whose start was under way are stopped as they come (their pipes
            // closed: nothing reads them any more).
            drop(self.take_spawned(Instant::now()));
            self.exited();
            if self.running() == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                if killed {
                    break;
                }
                self.signal_all(libc::SIGKILL);
                killed = true;
                deadline = now + std::time::Duration::from_secs(1);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        running
    }

    /// The next restart, for the reactor's poll timeout.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        self.slots
            .iter()
            .filter(|s| s.child.is_none())
            .filter_map(|s| s.restart_at)
            .min()
    }
}

/// The `alarm-segfault` message (README, "alarm-segfault").
pub(crate) fn crash_message(pid: i32, label: &str, sig: i32, core: bool, tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    let lines: Vec<&str> = text.lines().collect();
    let last = &lines[lines.len().saturating_sub(TAIL_LINES)..];
    let mut m = format!(
        "*** backtrace of {pid} ***\n{pid} ({label}) killed by signal {sig} ({}), core dumped: {}\ncommand: {label}\n",
        signal_name(sig),
        if core { "yes" } else { "no" }
    );
    if !last.is_empty() {
        m.push_str("last lines:\n");
        for l in last {
            m.push_str(l);
            m.push('\n');
        }
    }
    m.push_str("*** end of backtrace ***");
    m
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("stopping", &self.stopping)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_message_quotes_the_last_lines() {
        let tail: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let m = crash_message(42, "app --x", libc::SIGSEGV, false, tail.as_bytes());
        assert!(m.starts_with("*** backtrace of 42 ***\n42 (app --x) killed by signal 11 (SIGSEGV), core dumped: no\n"));
        assert!(m.contains("line 29\n*** end of backtrace ***"));
        assert!(!m.contains("line 19\n"));
        assert!(m.contains("line 20\n"));
    }

    /// A supervisor of `programs` whose spawner wakes the returned poll.
    fn with_spawner(programs: Vec<Program>, binsh: &str) -> (Supervisor, mio::Poll) {
        let mut s = Supervisor::new(programs, binsh.into(), Pids::default(), Mules::default());
        let poll = mio::Poll::new().unwrap();
        s.spawn_with(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap())
            .unwrap();
        (s, poll)
    }

    #[test]
    fn daemons_start_on_the_spawner_thread_and_wake_the_poll() {
        use std::io::Read;
        let (mut s, mut poll) = with_spawner(
            vec![
                Program::Daemon("echo one".into()),
                Program::Daemon("echo two >&2".into()),
            ],
            "/bin/sh",
        );
        let mut events = mio::Events::with_capacity(4);
        // Handed to the spawner: nothing started on this thread, both counted as running.
        let now = Instant::now();
        assert!(s.start_due(now).unwrap().is_empty());
        assert_eq!(s.running(), 2);
        assert_eq!(s.next_due(), None, "a start under way is not due again");
        let mut started = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while started.len() < 2 && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            started.extend(s.start_due(Instant::now()).unwrap());
        }
        assert_eq!(started.len(), 2, "the spawner woke the poll for each start");
        let mut said = Vec::new();
        for (slot, out, err) in started {
            let mut text = String::new();
            std::fs::File::from(out).read_to_string(&mut text).unwrap();
            std::fs::File::from(err).read_to_string(&mut text).unwrap();
            said.push((slot, text));
        }
        said.sort();
        assert_eq!(
            said,
            vec![(0, "one\n".to_string()), (1, "two\n".to_string())]
        );
        assert_eq!(s.pids.lock().unwrap().len(), 2);
        assert_eq!(s.stop_all(Duration::from_secs(2)), 2);
    }

    #[test]
    fn a_start_that_fails_on_the_spawner_is_retried_later() {
        let (mut s, mut poll) =
            with_spawner(vec![Program::Daemon("true".into())], "/nonexistent/sh");
        let mut events = mio::Events::with_capacity(4);
        let now = Instant::now();
        assert!(s.start_due(now).unwrap().is_empty());
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.running() > 0 && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            assert!(s.start_due(Instant::now()).unwrap().is_empty());
        }
        assert_eq!(s.running(), 0);
        let due = s.next_due().expect("a restart is planned");
        assert!(due > now, "after the back-off, not at once");
    }

    #[test]
    fn tail_keeps_the_latest_bytes() {
        let mut s = Supervisor::new(
            vec![Program::Daemon("true".into())],
            "/bin/sh".into(),
            Pids::default(),
            Mules::default(),
        );
        s.note_output(0, &[b'a'; 3000]);
        s.note_output(0, &[b'b'; 3000]);
        assert_eq!(s.slots[0].tail.len(), TAIL_BYTES);
        assert!(s.slots[0].tail.ends_with(&[b'b'; 3000]));
        s.note_output(0, &[b'c'; 9000]);
        assert_eq!(s.slots[0].tail, vec![b'c'; TAIL_BYTES]);
    }
}
