//! The reactor's sources: one table, indexed by `mio::Token`, of everything it reads.
//!
//! Role: a [`Source`] is a log input with its pipeline (standard input, a supervised process's
//! pipe, a followed file, a UDP socket), an `alarm-fd` watch, an `--alarm-socket`, or the signal
//! self-pipe. [`Table`] holds them by token, so the event loop matches on what a token is and
//! calls one handler per kind (mio's `tcp_server` example); freed tokens are reused for the
//! pipes of restarted processes.
//! Invariants: an entry's `ready` stays true (mio is edge-triggered) until a read says there is
//! nothing more; sources that cannot be polled (followed files) are made ready by a timer; a
//! log input is read at most `max` times per turn so that no input starves the others.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::dispatch::LogSink;
use crate::monitor::fd::FdWatch;
use crate::monitor::socket::AlarmSocket;
use crate::pipeline::Pipeline;
use crate::source::stdin::Prefetch;
use crate::source::tail::Tail;
use crate::source::udp::Udp;
use crate::source::{self, Step};
use crate::supervise::Supervisor;

/// What a log input reads from.
#[derive(Debug)]
pub(super) enum Input {
    /// Standard input (not owned), read by a thread.
    Stdin(Prefetch),
    /// Standard input (not owned) that is a pipe, read here while matching is cheap (see
    /// `source::stdin::read_direct`); it moves to a thread ([`Input::Stdin`]) once matching
    /// costs more.
    StdinPipe(DirectStdin),
    /// A pipe of supervised process `slot` (closed when dropped).
    Child { fd: OwnedFd, slot: usize },
    /// A `--tail` file (read on a timer).
    Tail(Tail),
    /// A `--udp` socket: each datagram is one or more lines.
    Udp(Udp),
    /// A `--nats` consumer, read by a thread of its own.
    Nats(crate::nats::NatsIn),
}

/// Standard input, a pipe, while the reactor reads it (see [`Input::StdinPipe`]), and what
/// reading and matching it here has cost this thread.
#[derive(Debug)]
pub(super) struct DirectStdin {
    pub(super) fd: RawFd,
    /// Where the current window of turns began: bytes read in all, and this thread's CPU time
    /// (nanoseconds); how many turns it holds so far (0: none began yet); and how many windows
    /// in a row cost more than the limit.
    since: u64,
    cpu: u64,
    turns: u32,
    costly_windows: u32,
}

/// Bytes of standard input read by the reactor before its cost is weighed: the first regions
/// pay for the automata's caches and the literal search's placement.
const DIRECT_TRIAL_BYTES: u64 = 4 << 20;

/// A window of turns, or of bytes, over which the reactor thread's CPU time per byte read is
/// weighed (its CPU time, not the clock's: a turn during which the scheduler ran `cat` on this
/// core is not slower for it). A slow matcher's turn is
/// [`READS_PER_TURN`](super::READS_PER_TURN) full reads: the bytes end its window.
const DIRECT_WINDOW: u32 = 16;
const DIRECT_WINDOW_BYTES: u64 = 4 << 20;

/// Windows in a row that must cost more than the limit: one can (the literal search placed
/// again from a sample of the stream, a core shared with `cat`'s: 10 rules, ~0.28 ns a byte,
/// measured up to 0.49 in a window).
const DIRECT_COSTLY_WINDOWS: u32 = 2;

impl DirectStdin {
    pub(super) fn new(fd: RawFd) -> DirectStdin {
        DirectStdin {
            fd,
            since: 0,
            cpu: 0,
            turns: 0,
            costly_windows: 0,
        }
    }

    /// After a turn that left `bytes` read in all: whether reading, matching and passing them
    /// here has cost this thread more than `max` nanoseconds a byte over
    /// [`DIRECT_COSTLY_WINDOWS`] windows in a row (then a reader thread pays). A window that
    /// ends while matching is `shared` with the pipeline's helper thread is never costly:
    /// both cores already match, and a reader thread would be a third busy thread on them.
    pub(super) fn costly(&mut self, bytes: u64, max: f64, shared: bool) -> bool {
        self.costly_at(bytes, crate::sys::thread_cpu_nanos(), max, shared)
    }

    /// [`costly`](Self::costly) with this thread's CPU time `cpu` (nanoseconds) given.
    fn costly_at(&mut self, bytes: u64, cpu: u64, max: f64, shared: bool) -> bool {
        if bytes < DIRECT_TRIAL_BYTES {
            return false;
        }
        if self.turns == 0 {
            (self.since, self.cpu, self.turns) = (bytes, cpu, 1);
            return false;
        }
        self.turns += 1;
        let read = bytes.saturating_sub(self.since);
        if read == 0 || (self.turns < DIRECT_WINDOW && read < DIRECT_WINDOW_BYTES) {
            return false;
        }
        let per_byte = cpu.saturating_sub(self.cpu) as f64 / read as f64;
        // The next window begins here.
        (self.since, self.cpu, self.turns) = (bytes, cpu, 1);
        self.costly_windows = match per_byte > max && !shared {
            true => self.costly_windows + 1,
            false => 0,
        };
        self.costly_windows >= DIRECT_COSTLY_WINDOWS
    }
}

/// One entry of the table.
#[derive(Debug)]
pub(super) enum Source {
    /// The signal self-pipe (the flags are in `Signals`).
    Signal,
    /// The supervisor's spawner thread says a process started (the loop's
    /// `start_due` takes it).
    Spawner,
    Log {
        input: Input,
        // Boxed: a pipeline is large, the other sources are a few words.
        pipeline: Box<Pipeline>,
    },
    AlarmFd(FdWatch),
    AlarmSocket(AlarmSocket),
}

impl Source {
    /// The supervised process slot whose pipe this is.
    pub(super) fn slot(&self) -> Option<usize> {
        match self {
            Source::Log {
                input: Input::Child { slot, .. },
                ..
            } => Some(*slot),
            _ => None,
        }
    }

    /// A log input whose reads may be held for a batch (`reactor::batch`): a supervised
    /// process's pipe or a followed file (read into the pipeline's buffer, not processed where
    /// another thread put it).
    pub(super) fn holds(&self) -> bool {
        matches!(
            self,
            Source::Log {
                input: Input::Child { .. } | Input::Tail(_),
                ..
            }
        )
    }

    pub(super) fn is_stdin(&self) -> bool {
        matches!(
            self,
            Source::Log {
                input: Input::Stdin(_) | Input::StdinPipe(_),
                ..
            }
        )
    }

    /// The descriptor registered in the poll, if any.
    fn polled_fd(&self) -> Option<RawFd> {
        match self {
            Source::Log { input, .. } => match input {
                Input::Child { fd, .. } => Some(fd.as_raw_fd()),
                Input::StdinPipe(d) => Some(d.fd),
                Input::Udp(u) => Some(u.sock.as_raw_fd()),
                // Standard input wakes the poll through a waker; files are not polled.
                Input::Stdin(_) | Input::Tail(_) | Input::Nats(_) => None,
            },
            Source::AlarmFd(w) => Some(w.fd),
            Source::AlarmSocket(s) => Some(s.fd()),
            Source::Signal | Source::Spawner => None,
        }
    }
}

/// A source and whether it may have something to read.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) source: Source,
    pub(super) ready: bool,
}

/// Every source, by token.
#[derive(Debug, Default)]
pub(super) struct Table {
    entries: Vec<Option<Entry>>,
}

impl Table {
    /// The token the next [`Table::insert`] will use.
    pub(super) fn next_token(&self) -> Token {
        Token(
            self.entries
                .iter()
                .position(Option::is_none)
                .unwrap_or(self.entries.len()),
        )
    }

    /// Add `source` (ready, so the first turn looks before the first poll says so), register
    /// its descriptor for reading, and return its token.
    pub(super) fn insert(&mut self, registry: &Registry, source: Source) -> io::Result<Token> {
        let token = self.next_token();
        if let Some(fd) = source.polled_fd() {
            registry.register(&mut SourceFd(&fd), token, Interest::READABLE)?;
        }
        let entry = Some(Entry {
            source,
            ready: true,
        });
        match self.entries.get_mut(token.0) {
            Some(slot) => *slot = entry,
            None => self.entries.push(entry),
        }
        Ok(token)
    }

    /// Take the source at `token` out of the table and the poll.
    pub(super) fn remove(&mut self, registry: &Registry, token: usize) -> Option<Source> {
        let entry = self.entries.get_mut(token)?.take()?;
        if let Some(fd) = entry.source.polled_fd() {
            let _ = registry.deregister(&mut SourceFd(&fd));
        }
        Some(entry.source)
    }

    pub(super) fn get_mut(&mut self, token: usize) -> Option<&mut Entry> {
        self.entries.get_mut(token)?.as_mut()
    }

    pub(super) fn tokens(&self) -> std::ops::Range<usize> {
        0..self.entries.len()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().flatten()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.iter_mut().flatten()
    }

    /// The ready log inputs whose reads may be held ([`Source::holds`]), in token order.
    pub(super) fn ready_holding(&mut self) -> Vec<super::batch::Ready<'_>> {
        let mut out = Vec::new();
        for (token, e) in self.entries.iter_mut().enumerate() {
            let Some(Entry { source, ready }) = e else {
                continue;
            };
            if !*ready || !source.holds() {
                continue;
            }
            if let Source::Log { input, pipeline } = source {
                out.push(super::batch::Ready {
                    token,
                    input,
                    pipeline,
                    ready,
                });
            }
        }
        out
    }

    /// The tokens of the sources `pred` picks.
    pub(super) fn tokens_where(&self, pred: impl Fn(&Source) -> bool) -> Vec<usize> {
        self.tokens()
            .filter(|&t| self.entries[t].as_ref().is_some_and(|e| pred(&e.source)))
            .collect()
    }
}

/// How the metrics name an input: `stdin`, `tail:PATH`, `udp:ADDR`, or the supervised
/// program's command.
pub(super) fn input_name(input: &Input, supervisor: &Supervisor) -> String {
    match input {
        Input::Stdin(_) | Input::StdinPipe(_) => "stdin".to_string(),
        Input::Child { slot, .. } => supervisor.label_of(*slot),
        Input::Tail(t) => format!("tail:{}", t.path().display()),
        Input::Nats(n) => format!("nats:{}", n.shown),
        Input::Udp(u) => match u.sock.local_addr() {
            Ok(a) => format!("udp:{a}"),
            Err(_) => "udp".to_string(),
        },
    }
}

/// One read of `input` into `pipeline`.
fn serve_once(
    input: &mut Input,
    pipeline: &mut Pipeline,
    sink: &mut LogSink<'_>,
    supervisor: &mut Supervisor,
) -> io::Result<Step> {
    match input {
        Input::Stdin(p) => p.serve(pipeline, sink),
        Input::StdinPipe(d) => source::stdin::read_direct(d.fd, pipeline, sink),
        Input::Tail(t) => t.serve(pipeline, sink),
        Input::Udp(u) => u.serve(pipeline, sink),
        Input::Nats(n) => n.serve(pipeline, sink),
        Input::Child { fd, slot } => {
            source::read_pipe(fd.as_raw_fd(), *slot, pipeline, sink, supervisor)
        }
    }
}

/// Read log input `input` up to `max` times into `pipeline`. Returns false at its end.
pub(super) fn read_turn(
    input: &mut Input,
    pipeline: &mut Pipeline,
    ready: &mut bool,
    sink: &mut LogSink<'_>,
    supervisor: &mut Supervisor,
    max: usize,
) -> io::Result<bool> {
    for _ in 0..max {
        if pipeline.held_full() {
            // Matched and passed in the batch first (`reactor::batch`); still ready.
            return Ok(true);
        }
        // The read happens now (standard input's thread stamps its own reads); the stamp is
        // not left behind for a monitor's raise after this turn.
        sink.dispatcher.read_at = Some(std::time::Instant::now());
        let step = serve_once(input, pipeline, sink, supervisor);
        sink.dispatcher.read_at = None;
        match step? {
            Step::More => {}
            Step::Idle => {
                *ready = false;
                return Ok(true);
            }
            Step::End => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `windows` windows of 4 MiB read at `per_byte` nanoseconds of CPU each, after the trial.
    fn weigh(d: &mut DirectStdin, bytes: &mut u64, cpu: &mut u64, per_byte: f64, n: u32) -> bool {
        let mut costly = false;
        for _ in 0..n {
            // A window ends (and the next begins) at the turn after 4 MiB more.
            *bytes += DIRECT_WINDOW_BYTES;
            *cpu += (DIRECT_WINDOW_BYTES as f64 * per_byte) as u64;
            costly |= d.costly_at(*bytes, *cpu, 0.42, false);
        }
        costly
    }

    #[test]
    fn standard_input_goes_to_a_thread_only_after_windows_in_a_row_cost_more_than_the_limit() {
        let mut d = DirectStdin::new(0);
        // The trial's bytes are never weighed, however costly.
        assert!(!d.costly_at(DIRECT_TRIAL_BYTES - 1, 1 << 40, 0.42, false));
        let (mut bytes, mut cpu) = (DIRECT_TRIAL_BYTES, 0);
        assert!(
            !d.costly_at(bytes, cpu, 0.42, false),
            "a window only begins"
        );
        // Cheap windows, and one costly window between cheap ones: stays.
        assert!(!weigh(&mut d, &mut bytes, &mut cpu, 0.3, 5));
        assert!(!weigh(&mut d, &mut bytes, &mut cpu, 0.9, 1));
        assert!(!weigh(&mut d, &mut bytes, &mut cpu, 0.3, 1));
        assert!(!weigh(&mut d, &mut bytes, &mut cpu, 0.9, 1));
        // Two costly windows in a row: a thread pays.
        assert!(weigh(&mut d, &mut bytes, &mut cpu, 0.9, 1));
        // Sixteen turns end a window too (a slow trickle of small turns).
        let mut d = DirectStdin::new(0);
        let (mut bytes, mut cpu) = (DIRECT_TRIAL_BYTES, 0);
        let mut costly = false;
        for _ in 0..(3 * DIRECT_WINDOW) {
            bytes += 1000;
            cpu += 1000;
            costly |= d.costly_at(bytes, cpu, 0.42, false);
        }
        assert!(costly, "1 ns a byte over windows of 16 turns");
    }

    #[test]
    fn standard_input_stays_with_the_reactor_while_a_helper_shares_its_matching() {
        let mut d = DirectStdin::new(0);
        let (mut bytes, mut cpu) = (DIRECT_TRIAL_BYTES, 0);
        assert!(!d.costly_at(bytes, cpu, 0.42, true));
        // Costly windows (2 ns a byte) that end while matching is shared: never costly.
        for _ in 0..6 {
            bytes += DIRECT_WINDOW_BYTES;
            cpu += DIRECT_WINDOW_BYTES * 2;
            assert!(
                !d.costly_at(bytes, cpu, 0.42, true),
                "shared matching stays"
            );
        }
        // The helper no longer shares (a cheaper stretch, the storm's one thread): two costly
        // windows in a row hand standard input to a thread.
        bytes += DIRECT_WINDOW_BYTES;
        cpu += DIRECT_WINDOW_BYTES * 2;
        assert!(!d.costly_at(bytes, cpu, 0.42, false));
        bytes += DIRECT_WINDOW_BYTES;
        cpu += DIRECT_WINDOW_BYTES * 2;
        assert!(d.costly_at(bytes, cpu, 0.42, false));
    }
}
