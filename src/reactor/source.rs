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
    /// A pipe of supervised process `slot` (closed when dropped).
    Child { fd: OwnedFd, slot: usize },
    /// A `--tail` file (read on a timer).
    Tail(Tail),
    /// A `--udp` socket: each datagram is one or more lines.
    Udp(Udp),
    /// A `--nats` consumer, read by a thread of its own.
    Nats(crate::nats::NatsIn),
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
                input: Input::Stdin(_),
                ..
            }
        )
    }

    /// The descriptor registered in the poll, if any.
    fn polled_fd(&self) -> Option<RawFd> {
        match self {
            Source::Log { input, .. } => match input {
                Input::Child { fd, .. } => Some(fd.as_raw_fd()),
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
        Input::Stdin(_) => "stdin".to_string(),
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
