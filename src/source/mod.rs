//! The log inputs other than the reactor's own: what each kind of input does when it is read.
//!
//! Role: one room per kind of input — [`stdin`] (standard input, read by a thread of its own),
//! [`tail`] (followed files), [`udp`] (datagrams), and supervised processes' pipes
//! ([`read_pipe`]). Each reads what is there into its input's [`Pipeline`] and says with a
//! [`Step`] whether to read again; the reactor decides when and how often.
//! Invariants: nothing here blocks (pipes and sockets are non-blocking, a tail reads what is
//! there, standard input hands over buffers its thread already filled); the dispatcher's lanes
//! are woken once per read (`LogSink::flush`), not per alarm; a lost input (a read error of a
//! child's pipe, a tail, a socket) is reported and ends or idles that input, never logalarm —
//! only standard input's read error and the output's write errors are errors.
//! Rejected alternative: a reader thread per input (see `reactor`'s module doc).

use std::io;
use std::os::fd::RawFd;

use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::report::report;
use crate::supervise::Supervisor;
use crate::sys;

pub(crate) mod stdin;
pub(crate) mod tail;
pub(crate) mod udp;

/// What one read of an input gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Something was read: read again (within the input's turn).
    More,
    /// Nothing there now: wait for the poll (or the timer) to say it is ready.
    Idle,
    /// The input ended: finish it (its last line without `\n` is a line too).
    End,
}

/// Read supervised process `slot`'s pipe `fd` once into `pipeline`; the bytes also go to the
/// process's crash-report tail.
pub(crate) fn read_pipe(
    fd: RawFd,
    slot: usize,
    pipeline: &mut Pipeline,
    sink: &mut LogSink<'_>,
    supervisor: &mut Supervisor,
) -> io::Result<Step> {
    let n = match sys::read_fd(fd, pipeline.spare()) {
        Ok(0) => return Ok(Step::End),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Idle),
        Err(e) => {
            report!(Alarm, "cannot read a supervised process's output: {e}");
            return Ok(Step::End);
        }
    };
    supervisor.note_output(slot, pipeline.just_read(n));
    let res = pipeline.commit(n, sink);
    sink.flush();
    res.map(|()| Step::More)
}
