//! The reactor: one mio `Poll` that reads every log input and watches signals and processes.
//!
//! Role: read standard input and the stdout/stderr pipes of supervised processes, each into a
//! pipeline of its own (which passes every byte to the output and raises alarms), so the merged
//! stream only ever switches inputs between whole lines; react to SIGTERM/SIGINT (stop reading,
//! or forward to supervised processes and wait for them), SIGHUP (reopen `--logto`, forward) and
//! SIGCHLD (reap, report crashes, restart).
//! Standard input is read by a thread of its own ([`Prefetch`]) into a few 1 MiB buffers whose
//! whole lines the pipeline processes in place, so the kernel's copy out of the pipe overlaps
//! matching; the thread wakes the poll through a `mio::Waker`, and its buffers come back through
//! a bounded channel (a slow log path stops the reading: back-pressure, as before).
//! Invariants: a ready input is read at most [`READS_PER_TURN`] times before the others get a
//! turn, and is remembered as ready (mio is edge-triggered) until a read says `WouldBlock`; reads
//! of the other inputs go straight into the pipeline's roll buffer; lanes are woken once per
//! read, not per alarm;
//! the output is written with blocking writes, so a slow output slows the reading
//! (back-pressure) instead of growing a buffer, and a process writing faster than that is slowed
//! by its full pipe, never dropped. A regular file on stdin (`logalarm < file`) cannot be
//! polled: it is always "ready" until its end.
//! Rejected alternative: a reader thread per input — supervised processes and tails are read
//! here (there may be hundreds, each slow); one channel per input keeps each input's order, and
//! inputs only switch between whole lines, as before.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::dispatch::Dispatcher;
use crate::monitor::{Backlog, FdEvent, FdWatch, Tail};
use crate::output::Output;
use crate::pipeline::{Pipeline, Sink, DEFAULT_CAPACITY};
use crate::rules::RuleSet;
use crate::supervise::Supervisor;
use crate::sys::{self, FdKind};

const SIGNAL: Token = Token(0);
/// Input `i` is registered as `Token(FIRST_INPUT + i)`.
const FIRST_INPUT: usize = 1;
/// Reads of one input before the others get a turn.
pub const READS_PER_TURN: usize = 16;
/// Buffer of each supervised process's pipe, tail and UDP input.
/// PERF: the same 1 MiB as stdin: with 256 KiB, `-- cat` of 256 MiB took 0.35-0.61 s against
/// stdin's 0.31-0.46 s; with 1 MiB, 0.30-0.34 s against 0.27-0.47 s (PERF.md). Untouched pages
/// of an idle process's buffer are never resident.
const CHILD_CAPACITY: usize = DEFAULT_CAPACITY;
/// `alarm-fd` watch `i` is `Token(FD_BASE + i)`; `--alarm-socket` `i` is `Token(SOCKET_BASE + i)`.
const FD_BASE: usize = 1 << 24;
const SOCKET_BASE: usize = 2 << 24;
/// How often `--tail` files are read and `--watch-socket` queues checked.
const TAIL_EVERY: Duration = Duration::from_millis(200);
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// The monitors and inputs beyond standard input and supervised processes (see `monitor`).
#[derive(Default)]
pub struct Monitors {
    pub fds: Vec<FdWatch>,
    pub backlogs: Vec<Backlog>,
    /// Ranks of the `alarm-backlog` alarms.
    pub backlog_alarms: Vec<u32>,
    pub tails: Vec<Tail>,
    /// Bound `--udp` sockets (shown address, socket).
    pub udp: Vec<(String, std::net::UdpSocket)>,
    /// Bound `--alarm-socket` sockets (path, socket); the files are removed at the end.
    pub sockets: Vec<(std::path::PathBuf, std::os::unix::net::UnixDatagram)>,
    /// Alarm name → rank, for `--alarm-socket` datagrams.
    pub names: std::collections::HashMap<String, u32>,
}

impl Monitors {
    /// Whether something keeps logalarm running after standard input ends (`alarm-fd`
    /// watches count while open).
    fn endless(&self) -> bool {
        !self.backlogs.is_empty()
            || !self.tails.is_empty()
            || !self.udp.is_empty()
            || !self.sockets.is_empty()
    }
}

/// Why the reactor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// All input was read.
    Eof,
    /// SIGTERM or SIGINT.
    Signal,
    /// The `-- CMD` process ended with this status (128 + N when killed by signal N).
    Command(i32),
}

/// The log path's sink: bytes to the output, alarms to the dispatcher.
pub struct LogSink<'a> {
    pub output: &'a Output,
    pub dispatcher: &'a mut Dispatcher,
}

impl Sink for LogSink<'_> {
    #[inline]
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.output.write(bytes)
    }
    #[inline]
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        self.dispatcher.raise(alarm, msg);
    }
}

/// Signal flags plus a self-pipe registered in the poll.
pub struct Signals {
    /// The terminating signal received (SIGTERM or SIGINT), 0 if none.
    term: Arc<AtomicUsize>,
    hup: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
    wake: mio::net::UnixStream,
    _ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD.
    pub fn install() -> io::Result<Signals> {
        let term = Arc::new(AtomicUsize::new(0));
        let hup = Arc::new(AtomicBool::new(false));
        let chld = Arc::new(AtomicBool::new(false));
        let (r, w) = StdUnixStream::pair()?;
        r.set_nonblocking(true)?;
        w.set_nonblocking(true)?;
        let mut ids = Vec::new();
        for sig in [libc::SIGTERM, libc::SIGINT] {
            ids.push(signal_hook::flag::register_usize(
                sig,
                term.clone(),
                sig as usize,
            )?);
            ids.push(signal_hook::low_level::pipe::register(sig, w.try_clone()?)?);
        }
        ids.push(signal_hook::flag::register(libc::SIGHUP, hup.clone())?);
        ids.push(signal_hook::low_level::pipe::register(
            libc::SIGHUP,
            w.try_clone()?,
        )?);
        ids.push(signal_hook::flag::register(libc::SIGCHLD, chld.clone())?);
        ids.push(signal_hook::low_level::pipe::register(libc::SIGCHLD, w)?);
        Ok(Signals {
            term,
            hup,
            chld,
            wake: mio::net::UnixStream::from_std(r),
            _ids: ids,
        })
    }

    fn drain(&mut self) {
        let mut b = [0u8; 64];
        while matches!(io::Read::read(&mut self.wake, &mut b), Ok(n) if n > 0) {}
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self._ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Restores a descriptor's blocking mode when dropped.
/// Buffers of standard input's reader thread: read, queued, or being processed.
const STDIN_CHUNKS: usize = 4;

/// Standard input, read by a thread of its own into [`STDIN_CHUNKS`] buffers that the reactor
/// processes in place and hands back.
struct Prefetch {
    /// Chunks read (the buffer and what `read` returned), in order.
    full: std::sync::mpsc::Receiver<(Vec<u8>, io::Result<usize>)>,
    /// Buffers handed back.
    empty: std::sync::mpsc::SyncSender<Vec<u8>>,
    /// Kept open here too: a waker dropped by the ending thread would close its descriptor and
    /// take a wake-up not yet polled with it.
    _waker: Arc<mio::Waker>,
}

impl Prefetch {
    /// Start the reader of `fd`; it wakes the poll through `waker` after each chunk.
    // PERF: reading (the kernel's copy out of the pipe) overlaps matching: 1 GiB through
    // `cat |` with 10 rules, the reactor reading itself left both cores idle a third of the
    // time (see PERF.md "reader thread").
    fn start(fd: RawFd, waker: mio::Waker) -> io::Result<Prefetch> {
        let waker = Arc::new(waker);
        let kept = waker.clone();
        let (full_tx, full) = std::sync::mpsc::sync_channel(STDIN_CHUNKS);
        let (empty, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STDIN_CHUNKS);
        for _ in 0..STDIN_CHUNKS {
            let _ = empty.send(Vec::new());
        }
        std::thread::Builder::new()
            .name("logalarm-stdin".into())
            .spawn(move || {
                // Ends when the reactor drops its end (a blocked read ends with the process).
                while let Ok(mut buf) = empty_rx.recv() {
                    buf.resize(DEFAULT_CAPACITY, 0);
                    let got = loop {
                        match sys::read_fd(fd, &mut buf) {
                            // An inherited non-blocking descriptor: wait for data.
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                if let Err(e) = sys::wait_fd(fd, libc::POLLIN, -1) {
                                    break Err(e);
                                }
                            }
                            other => break other,
                        }
                    };
                    let last = !matches!(got, Ok(n) if n > 0);
                    if full_tx.send((buf, got)).is_err() {
                        return;
                    }
                    let _ = waker.wake();
                    if last {
                        return;
                    }
                }
            })?;
        Ok(Prefetch {
            full,
            empty,
            _waker: kept,
        })
    }
}

enum Source {
    /// Standard input (not owned), read by a thread.
    Stdin(Prefetch),
    /// A pipe of supervised process `slot` (closed when dropped).
    Child { _fd: OwnedFd, slot: usize },
    /// A `--tail` file (read on a timer).
    Tail(Tail),
    /// A `--udp` socket: each datagram is one or more lines.
    Udp {
        sock: mio::net::UdpSocket,
        scratch: Vec<u8>,
    },
    /// The lines logalarm writes into the log stream itself (listen-queue reports).
    Internal,
}

struct Input<'r> {
    fd: RawFd,
    source: Source,
    pipeline: Pipeline<'r>,
    pollable: bool,
    ready: bool,
}

impl Input<'_> {
    fn slot(&self) -> Option<usize> {
        match self.source {
            Source::Child { slot, .. } => Some(slot),
            _ => None,
        }
    }
}

/// What the reactor drives.
pub struct Ctx<'a> {
    pub output: &'a Output,
    pub dispatcher: &'a mut Dispatcher,
    pub signals: &'a mut Signals,
    /// Supervised processes (empty when none are configured).
    pub supervisor: &'a mut Supervisor,
    /// Alarm ranks raised when a supervised process crashes.
    pub segfault: &'a [u32],
    /// How long supervised processes get to stop after a forwarded SIGTERM/SIGINT.
    pub grace: Duration,
    pub monitors: &'a mut Monitors,
}

/// Read standard input (`stdin`, unless a `-- CMD` owns it) and every supervised process's
/// output until the end: end of standard input when nothing is supervised, SIGTERM/SIGINT (after
/// supervised processes stopped), or the end of `-- CMD`.
pub fn run(rules: &RuleSet, stdin: Option<RawFd>, cx: Ctx<'_>) -> io::Result<End> {
    let Ctx {
        output,
        dispatcher,
        signals,
        supervisor,
        segfault,
        grace,
        monitors,
    } = cx;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut signals.wake, SIGNAL, Interest::READABLE)?;
    let mut inputs: Vec<Option<Input<'_>>> = Vec::new();
    // Input 0: what logalarm itself writes into the stream (never read from a descriptor).
    inputs.push(Some(Input {
        fd: -1,
        source: Source::Internal,
        pipeline: Pipeline::new(rules.matcher(), 64 * 1024),
        pollable: true,
        ready: false,
    }));
    // Tails, UDP and alarm sockets keep logalarm running after standard input ends.
    let endless = monitors.endless();
    let mut stdin_open = false;
    if let Some(fd) = stdin {
        inputs.push(Some(stdin_input(&poll, rules, fd, inputs.len())?));
        stdin_open = true;
    }
    for tail in std::mem::take(&mut monitors.tails) {
        inputs.push(Some(Input {
            fd: -1,
            source: Source::Tail(tail),
            pipeline: Pipeline::new(rules.matcher(), CHILD_CAPACITY),
            pollable: false,
            ready: true,
        }));
    }
    for (shown, sock) in std::mem::take(&mut monitors.udp) {
        sock.set_nonblocking(true)?;
        let mut sock = mio::net::UdpSocket::from_std(sock);
        let k = inputs.len();
        poll.registry()
            .register(&mut sock, Token(FIRST_INPUT + k), Interest::READABLE)
            .map_err(|e| io::Error::new(e.kind(), format!("udp {shown}: {e}")))?;
        inputs.push(Some(Input {
            fd: sock.as_raw_fd(),
            source: Source::Udp {
                sock,
                scratch: vec![0u8; 65536],
            },
            pipeline: Pipeline::new(rules.matcher(), CHILD_CAPACITY),
            pollable: true,
            ready: true,
        }));
    }
    for (i, w) in monitors.fds.iter().enumerate() {
        sys::set_nonblocking(w.fd, true)?;
        poll.registry()
            .register(&mut SourceFd(&w.fd), Token(FD_BASE + i), Interest::READABLE)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("alarm-fd: descriptor {} cannot be watched: {e}", w.fd),
                )
            })?;
    }
    let mut fd_open: Vec<bool> = vec![true; monitors.fds.len()];
    let mut fd_ready: Vec<bool> = vec![true; monitors.fds.len()];
    let sockets = std::mem::take(&mut monitors.sockets);
    for (i, (_, sock)) in sockets.iter().enumerate() {
        sock.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&sock.as_raw_fd()),
            Token(SOCKET_BASE + i),
            Interest::READABLE,
        )?;
    }
    let mut sock_ready: Vec<bool> = vec![true; sockets.len()];
    let mut sock_buf = vec![0u8; 65536];
    let mut last_tail = Instant::now();
    let mut last_backlog = Instant::now();
    let mut events = Events::with_capacity(64);
    let mut stopping: Option<(i32, Instant)> = None;
    let mut killed = false;
    let mut command_status: Option<i32> = None;
    let mut last_reap = Instant::now();
    let end = loop {
        let now = Instant::now();
        match supervisor.start_due(now) {
            Ok(started) => {
                for (slot, out, err) in started {
                    for fd in [out, err] {
                        add_child_input(&poll, rules, &mut inputs, fd, slot)?;
                    }
                }
            }
            Err(e) => return Err(io::Error::other(e)),
        }
        let any_ready = inputs.iter().flatten().any(|i| i.ready)
            || fd_ready.iter().zip(&fd_open).any(|(r, o)| *r && *o)
            || sock_ready.iter().any(|r| *r);
        let mut timeout = Duration::from_secs(1);
        if let Some(t) = supervisor.next_due() {
            timeout = timeout.min(t.saturating_duration_since(now));
        }
        if let Some((_, deadline)) = stopping {
            timeout =
                timeout.min(deadline.saturating_duration_since(now) + Duration::from_millis(5));
        }
        if inputs
            .iter()
            .flatten()
            .any(|i| matches!(i.source, Source::Tail(_)))
        {
            timeout = timeout.min((last_tail + TAIL_EVERY).saturating_duration_since(now));
        }
        if !monitors.backlogs.is_empty() {
            timeout = timeout.min((last_backlog + BACKLOG_EVERY).saturating_duration_since(now));
        }
        if any_ready {
            timeout = Duration::ZERO;
        }
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if ev.token() == SIGNAL {
                signals.drain();
            } else if t >= SOCKET_BASE {
                if let Some(r) = sock_ready.get_mut(t - SOCKET_BASE) {
                    *r = true;
                }
            } else if t >= FD_BASE {
                if let Some(r) = fd_ready.get_mut(t - FD_BASE) {
                    *r = true;
                }
            } else if let Some(Some(i)) = inputs.get_mut(t - FIRST_INPUT) {
                i.ready = true;
            }
        }

        // Signals.
        let sig = signals.term.swap(0, Ordering::Relaxed) as i32;
        if sig != 0 && stopping.is_none() {
            if supervisor.running() == 0 {
                break End::Signal;
            }
            supervisor.stop(sig);
            stopping = Some((sig, Instant::now() + grace));
            // Standard input is not read any more: what was read is finished below.
            close_where(&poll, &mut inputs, output, dispatcher, |i| {
                i.slot().is_none()
            })?;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            if let Err(e) = output.reopen() {
                eprintln!("[uwsgi-alarm] cannot reopen the log output: {e}");
            }
            supervisor.signal_all(libc::SIGHUP);
        }

        // Input.
        for k in 0..inputs.len() {
            let Some(input) = inputs[k].as_mut() else {
                continue;
            };
            if !input.ready && input.pollable {
                continue;
            }
            let open = read_turn(input, supervisor, output, dispatcher, READS_PER_TURN)?;
            if !open {
                if matches!(input.source, Source::Stdin(_)) {
                    stdin_open = false;
                }
                close(&poll, &mut inputs, k, output, dispatcher)?;
            }
        }

        // Timers: tails, listen queues.
        if last_tail.elapsed() >= TAIL_EVERY {
            last_tail = Instant::now();
            for i in inputs.iter_mut().flatten() {
                if matches!(i.source, Source::Tail(_)) {
                    i.ready = true;
                }
            }
        }
        if !monitors.backlogs.is_empty() && last_backlog.elapsed() >= BACKLOG_EVERY {
            last_backlog = Instant::now();
            for b in monitors.backlogs.iter_mut() {
                if let Some((q, max)) = b.check() {
                    let (line, msg) = b.texts(q, max);
                    if let Some(Some(internal)) = inputs.get_mut(0) {
                        let mut sink = LogSink {
                            output,
                            dispatcher: &mut *dispatcher,
                        };
                        internal.pipeline.feed(line.as_bytes(), &mut sink)?;
                    }
                    for &a in &monitors.backlog_alarms {
                        dispatcher.raise(a, msg.as_bytes());
                    }
                    dispatcher.flush();
                }
            }
        }

        // alarm-fd.
        for (i, w) in monitors.fds.iter_mut().enumerate() {
            if !fd_open[i] || !fd_ready[i] {
                continue;
            }
            fd_ready[i] = false;
            let (times, closed) = match w.on_readable() {
                FdEvent::Events(n) => (n, false),
                FdEvent::Closed(why) => {
                    eprintln!("{why}");
                    let _ = poll.registry().deregister(&mut SourceFd(&w.fd));
                    fd_open[i] = false;
                    (1, true)
                }
            };
            for _ in 0..times {
                for (rank, msg) in &w.entries {
                    dispatcher.raise(*rank, msg.as_bytes());
                }
            }
            if times > 0 || closed {
                dispatcher.flush();
            }
        }

        // alarm-socket.
        for (i, (path, sock)) in sockets.iter().enumerate() {
            if !sock_ready[i] {
                continue;
            }
            loop {
                match sock.recv_from(&mut sock_buf) {
                    Ok((n, from)) => {
                        let answer = match crate::monitor::split_raise(&sock_buf[..n]) {
                            Some((name, msg)) => match monitors.names.get(name) {
                                Some(&rank) => {
                                    dispatcher.raise(rank, msg);
                                    "ok\n".to_string()
                                }
                                None => format!("unknown alarm \"{}\"\n", name.escape_debug()),
                            },
                            None => "not \"NAME MESSAGE\"\n".to_string(),
                        };
                        if answer != "ok\n" {
                            eprintln!(
                                "[uwsgi-alarm] alarm-socket {}: {}",
                                path.display(),
                                answer.trim_end()
                            );
                        }
                        // A client that bound an address (logalarm raise) gets the answer.
                        if !from.is_unnamed() {
                            let _ = sock.send_to_addr(answer.as_bytes(), &from);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        sock_ready[i] = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("[uwsgi-alarm] alarm-socket {}: {e}", path.display());
                        sock_ready[i] = false;
                        break;
                    }
                }
            }
            dispatcher.flush();
        }

        // Processes.
        let chld = signals.chld.swap(false, Ordering::Relaxed);
        if chld || last_reap.elapsed() >= Duration::from_secs(1) {
            last_reap = Instant::now();
            for (slot, pid, status) in supervisor.exited() {
                // What it left in its pipes comes before the report (its last lines).
                for k in 0..inputs.len() {
                    if let Some(input) = inputs[k].as_mut().filter(|i| i.slot() == Some(slot)) {
                        if !read_turn(input, supervisor, output, dispatcher, usize::MAX)? {
                            close(&poll, &mut inputs, k, output, dispatcher)?;
                        }
                    }
                }
                let exit = supervisor.report(slot, pid, status);
                if let Some(msg) = &exit.crash {
                    eprintln!("[uwsgi-alarm] {}", msg.replace('\n', "\n[uwsgi-alarm] "));
                    for &a in segfault {
                        dispatcher.raise(a, msg.as_bytes());
                    }
                    dispatcher.flush();
                }
                if exit.main {
                    command_status = Some(
                        match (
                            status.code(),
                            std::os::unix::process::ExitStatusExt::signal(&status),
                        ) {
                            (Some(c), _) => c,
                            (None, Some(s)) => 128 + s,
                            _ => 1,
                        },
                    );
                    if stopping.is_none() {
                        supervisor.stop(libc::SIGTERM);
                        stopping = Some((libc::SIGTERM, Instant::now() + grace));
                    }
                }
            }
        }

        // The end.
        if let Some((_, deadline)) = stopping {
            let children_open = inputs.iter().flatten().any(|i| i.slot().is_some());
            if supervisor.running() == 0 && (!children_open || killed) {
                break command_status.map_or(End::Signal, End::Command);
            }
            if Instant::now() >= deadline && !killed {
                if supervisor.running() > 0 {
                    eprintln!(
                        "[uwsgi-alarm] {} supervised process(es) still running after {}s: SIGKILL",
                        supervisor.running(),
                        grace.as_secs()
                    );
                }
                supervisor.signal_all(libc::SIGKILL);
                killed = true;
                stopping = Some((libc::SIGKILL, Instant::now() + Duration::from_secs(2)));
            } else if killed && Instant::now() >= deadline {
                // Pipes still held open by processes outside our groups.
                break command_status.map_or(End::Signal, End::Command);
            }
        } else if supervisor.is_empty() && !stdin_open && !endless && !fd_open.iter().any(|o| *o) {
            break End::Eof;
        }
    };
    for k in 0..inputs.len() {
        if inputs[k].is_some() {
            close(&poll, &mut inputs, k, output, dispatcher)?;
        }
    }
    for (path, _) in &sockets {
        let _ = std::fs::remove_file(path);
    }
    Ok(end)
}

fn stdin_input<'r>(poll: &Poll, rules: &'r RuleSet, fd: RawFd, k: usize) -> io::Result<Input<'r>> {
    let ctx =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("log input: {what}: {e}"));
    if sys::fd_kind(fd).map_err(|e| ctx("fstat", e))? == FdKind::Pollable {
        // PERF: a 1 MiB pipe instead of 64 KiB: 16x fewer wake-ups of the reader and writer.
        let _ = sys::grow_pipe(fd, 1 << 20);
    }
    let waker = mio::Waker::new(poll.registry(), Token(FIRST_INPUT + k))
        .map_err(|e| ctx("cannot poll it", e))?;
    let prefetch = Prefetch::start(fd, waker).map_err(|e| ctx("cannot start its reader", e))?;
    Ok(Input {
        fd,
        source: Source::Stdin(prefetch),
        pipeline: Pipeline::new(rules.matcher(), DEFAULT_CAPACITY),
        pollable: true,
        // A chunk may already wait: look before the first poll says so.
        ready: true,
    })
}

fn add_child_input<'r>(
    poll: &Poll,
    rules: &'r RuleSet,
    inputs: &mut Vec<Option<Input<'r>>>,
    fd: OwnedFd,
    slot: usize,
) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    sys::set_nonblocking(raw, true)?;
    // PERF: as for stdin, a 1 MiB pipe: a fast writer wakes the reactor 16x less often.
    let _ = sys::grow_pipe(raw, 1 << 20);
    let k = match inputs.iter().position(Option::is_none) {
        Some(k) => k,
        None => {
            inputs.push(None);
            inputs.len() - 1
        }
    };
    poll.registry().register(
        &mut SourceFd(&raw),
        Token(FIRST_INPUT + k),
        Interest::READABLE,
    )?;
    inputs[k] = Some(Input {
        fd: raw,
        source: Source::Child { _fd: fd, slot },
        pipeline: Pipeline::new(rules.matcher(), CHILD_CAPACITY),
        pollable: true,
        ready: true,
    });
    Ok(())
}

/// Read `input` up to `max` times. Returns false at its end (EOF, or a read error of a child's
/// pipe, which is reported). A read error of standard input and any output error are errors.
fn read_turn(
    input: &mut Input<'_>,
    supervisor: &mut Supervisor,
    output: &Output,
    dispatcher: &mut Dispatcher,
    max: usize,
) -> io::Result<bool> {
    let slot = input.slot();
    for _ in 0..max {
        let got = match &mut input.source {
            Source::Internal => {
                input.ready = false;
                return Ok(true);
            }
            Source::Tail(t) => match t.read(input.pipeline.spare()) {
                Ok(0) => {
                    input.ready = false;
                    return Ok(true);
                }
                Ok(n) => Ok(n),
                Err(e) => {
                    eprintln!("[uwsgi-alarm] tail {}: {e}", t.path.display());
                    input.ready = false;
                    return Ok(true);
                }
            },
            Source::Stdin(p) => match p.full.try_recv() {
                Ok((buf, got)) => {
                    let n = match got {
                        Ok(0) => return Ok(false),
                        Ok(n) => n,
                        Err(e) => {
                            return Err(io::Error::new(
                                e.kind(),
                                format!("cannot read log input: {e}"),
                            ))
                        }
                    };
                    let mut sink = LogSink {
                        output,
                        dispatcher: &mut *dispatcher,
                    };
                    let res = input.pipeline.feed_chunk(&buf[..n], &mut sink);
                    // Never blocks: the channel holds every buffer.
                    let _ = p.empty.try_send(buf);
                    dispatcher.flush();
                    res?;
                    continue;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    input.ready = false;
                    return Ok(true);
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return Ok(false),
            },
            Source::Udp { sock, scratch } => match sock.recv(scratch) {
                Ok(n) => {
                    // A datagram is whole lines: one without a final newline gets one, so
                    // datagrams of different senders never join.
                    let mut sink = LogSink {
                        output,
                        dispatcher: &mut *dispatcher,
                    };
                    let mut res = input.pipeline.feed(&scratch[..n], &mut sink);
                    if res.is_ok() && scratch[..n].last() != Some(&b'\n') {
                        res = input.pipeline.feed(b"\n", &mut sink);
                    }
                    dispatcher.flush();
                    res?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    input.ready = false;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("[uwsgi-alarm] udp: {e}");
                    input.ready = false;
                    return Ok(true);
                }
            },
            _ => sys::read_fd(input.fd, input.pipeline.spare()),
        };
        let n = match got {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                input.ready = false;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if slot.is_some() {
                    eprintln!("[uwsgi-alarm] cannot read a supervised process's output: {e}");
                    return Ok(false);
                }
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read log input: {e}"),
                ));
            }
        };
        if let Some(slot) = slot {
            supervisor.note_output(slot, input.pipeline.just_read(n));
        }
        let mut sink = LogSink {
            output,
            dispatcher: &mut *dispatcher,
        };
        let res = input.pipeline.commit(n, &mut sink);
        dispatcher.flush();
        res?;
    }
    Ok(true)
}

/// Finish input `k` (its last line without `\n` is a line too) and forget it.
fn close(
    poll: &Poll,
    inputs: &mut [Option<Input<'_>>],
    k: usize,
    output: &Output,
    dispatcher: &mut Dispatcher,
) -> io::Result<()> {
    let Some(mut input) = inputs[k].take() else {
        return Ok(());
    };
    if input.pollable {
        let _ = poll.registry().deregister(&mut SourceFd(&input.fd));
    }
    let mut sink = LogSink {
        output,
        dispatcher: &mut *dispatcher,
    };
    let res = input.pipeline.finish(&mut sink);
    dispatcher.flush();
    res
}

fn close_where(
    poll: &Poll,
    inputs: &mut [Option<Input<'_>>],
    output: &Output,
    dispatcher: &mut Dispatcher,
    pred: impl Fn(&Input<'_>) -> bool,
) -> io::Result<()> {
    for k in 0..inputs.len() {
        if inputs[k].as_ref().is_some_and(&pred) {
            close(poll, inputs, k, output, dispatcher)?;
        }
    }
    Ok(())
}
