//! `alarm-fd`: a descriptor becoming readable raises alarms.
//!
//! Role: [`FdWatch`] groups the `alarm-fd` entries on one inherited descriptor and turns what a
//! readable descriptor gives into events of N bytes (8 for an eventfd, 1 otherwise, or the
//! entry's own count), each raising every entry's alarm. The reactor polls the descriptor and
//! calls [`FdWatch::serve`] when it is readable.
//! Invariants: never blocks (the descriptor is made non-blocking); short reads accumulate across
//! calls (`have`); end of file or a read error is reported once, raises once more, and ends the
//! watch.

use std::io;
use std::os::fd::RawFd;

use super::MonitorError;
use crate::config::AlarmFdDef;
use crate::dispatch::Dispatcher;
use crate::report::report;
use crate::sys;

/// One watched descriptor and the `alarm-fd` entries on it.
#[derive(Debug)]
pub(crate) struct FdWatch {
    pub(crate) fd: RawFd,
    /// Bytes that make one event.
    want: usize,
    /// Bytes of the current event read so far: `have < want` between calls.
    have: usize,
    /// (alarm rank, message) of every entry on this descriptor.
    entries: Vec<(u32, String)>,
}

/// What a readable `alarm-fd` descriptor gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FdEvent {
    /// This many complete events (each raises every entry's alarm); still watched.
    Events(usize),
    /// End of file or a read error after this many complete events (the bytes that came with
    /// the end count too): reported, no longer watched; raise once more.
    Closed(usize, String),
}

impl FdWatch {
    /// Raise each entry's alarm by its new rank (a reload reorders ranks).
    pub(crate) fn remap(&mut self, new_rank: &dyn Fn(u32) -> u32) {
        for (rank, _) in &mut self.entries {
            *rank = new_rank(*rank);
        }
    }

    /// Group `alarm-fd` entries by descriptor (in first-seen order). `rank` maps alarm names.
    pub(crate) fn group(
        defs: &[AlarmFdDef],
        rank: impl Fn(&str) -> u32,
    ) -> Result<Vec<FdWatch>, MonitorError> {
        let mut out: Vec<FdWatch> = Vec::new();
        for d in defs {
            if let Some(w) = out.iter_mut().find(|w| w.fd == d.fd) {
                w.entries.push((rank(&d.name), d.message.clone()));
                continue;
            }
            if !sys::fd_is_open(d.fd) {
                return Err(MonitorError::FdNotOpen {
                    name: d.name.clone(),
                    fd: d.fd,
                });
            }
            let eventfd = sys::fd_target(d.fd).contains("eventfd");
            let want = d.bytes.unwrap_or(if eventfd { 8 } else { 1 });
            out.push(FdWatch {
                fd: d.fd,
                want,
                have: 0,
                entries: vec![(rank(&d.name), d.message.clone())],
            });
        }
        Ok(out)
    }

    /// Read what is there without blocking, accumulating short reads into events of
    /// `want` bytes (the bytes are discarded).
    fn on_readable(&mut self) -> FdEvent {
        let mut scratch = [0u8; 4096];
        let mut events = 0;
        loop {
            let room = (self.want - self.have).min(scratch.len());
            match sys::read_fd(self.fd, &mut scratch[..room]) {
                Ok(0) => {
                    let why = format!("fd {}: end of file: no longer watched", self.fd);
                    return FdEvent::Closed(events, why);
                }
                Ok(n) => {
                    self.have += n;
                    if self.have >= self.want {
                        self.have = 0;
                        events += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return FdEvent::Events(events),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return FdEvent::Closed(
                        events,
                        format!("fd {}: read error: {e}: no longer watched", self.fd),
                    )
                }
            }
        }
    }

    /// The descriptor is readable: raise every entry's alarm once per complete event (and once
    /// more at its end). Returns whether it is still watched.
    pub(crate) fn serve(&mut self, dispatcher: &mut Dispatcher) -> bool {
        let (times, open) = match self.on_readable() {
            FdEvent::Events(n) => (n, true),
            FdEvent::Closed(n, why) => {
                report!(Fd, "{why}");
                (n + 1, false)
            }
        };
        for _ in 0..times {
            for (rank, msg) in &self.entries {
                dispatcher.raise(*rank, msg.as_bytes());
            }
        }
        if times > 0 {
            dispatcher.flush();
        }
        open
    }
}
