//! Signals as reactor events: flags set by the handlers plus a self-pipe the poll watches.
//!
//! Role: [`Signals`] installs the handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD (and, after
//! the handlers, nothing else runs in signal context: the flags are read by the reactor).
//! Invariants: the terminating signal is remembered until taken ([`Signals::take_term`]); the
//! self-pipe is drained on every wake-up; the handlers are unregistered when dropped.

use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Signal flags plus a self-pipe registered in the poll.
#[derive(Debug)]
pub(crate) struct Signals {
    /// The terminating signal received (SIGTERM or SIGINT), 0 if none.
    term: Arc<AtomicUsize>,
    /// Set by SIGTERM or SIGINT and never cleared: read by code that may block outside the
    /// reactor (a full alarm queue, a stuck output).
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
    /// SIGUSR1 and SIGUSR2 received (forwarded, never fatal).
    usr1: Arc<AtomicBool>,
    usr2: Arc<AtomicBool>,
    pub(super) wake: mio::net::UnixStream,
    _ids: Vec<signal_hook::SigId>,
}

impl Signals {
    /// Install handlers for SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGUSR1 and SIGUSR2 (whose
    /// default action would kill logalarm: uWSGI and nginx users send them out of habit).
    pub(crate) fn install() -> io::Result<Signals> {
        let term = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let chld = Arc::new(AtomicBool::new(false));
        let usr1 = Arc::new(AtomicBool::new(false));
        let usr2 = Arc::new(AtomicBool::new(false));
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
            ids.push(signal_hook::flag::register(sig, stop.clone())?);
            ids.push(signal_hook::low_level::pipe::register(sig, w.try_clone()?)?);
        }
        ids.push(signal_hook::flag::register(libc::SIGHUP, hup.clone())?);
        ids.push(signal_hook::low_level::pipe::register(
            libc::SIGHUP,
            w.try_clone()?,
        )?);
        for (sig, flag) in [(libc::SIGUSR1, &usr1), (libc::SIGUSR2, &usr2)] {
            ids.push(signal_hook::flag::register(sig, flag.clone())?);
            ids.push(signal_hook::low_level::pipe::register(sig, w.try_clone()?)?);
        }
        ids.push(signal_hook::flag::register(libc::SIGCHLD, chld.clone())?);
        ids.push(signal_hook::low_level::pipe::register(libc::SIGCHLD, w)?);
        Ok(Signals {
            term,
            stop,
            hup,
            chld,
            usr1,
            usr2,
            wake: mio::net::UnixStream::from_std(r),
            _ids: ids,
        })
    }

    /// The flag SIGTERM and SIGINT set (and nothing clears).
    pub(crate) fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// The terminating signal received since the last call (SIGTERM or SIGINT), if any.
    pub(super) fn take_term(&self) -> Option<i32> {
        match self.term.swap(0, Ordering::Relaxed) as i32 {
            0 => None,
            sig => Some(sig),
        }
    }

    /// Whether SIGHUP came since the last call.
    pub(super) fn take_hup(&self) -> bool {
        self.hup.swap(false, Ordering::Relaxed)
    }

    /// The user signals (SIGUSR1, SIGUSR2) that came since the last call.
    pub(super) fn take_usr(&self) -> impl Iterator<Item = i32> {
        let one = self
            .usr1
            .swap(false, Ordering::Relaxed)
            .then_some(libc::SIGUSR1);
        let two = self
            .usr2
            .swap(false, Ordering::Relaxed)
            .then_some(libc::SIGUSR2);
        one.into_iter().chain(two)
    }

    /// Whether SIGCHLD came since the last call.
    pub(super) fn take_chld(&self) -> bool {
        self.chld.swap(false, Ordering::Relaxed)
    }

    pub(super) fn drain(&mut self) {
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
