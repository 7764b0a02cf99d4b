//! How logalarm stops: the stop / kill / deadline state machine, as a pure type.
//!
//! Role: [`Shutdown`] decides, from what happened (a terminating signal, the end of `-- CMD`)
//! and what is still there (supervised processes running, their pipes open), whether the
//! reactor goes on, sends SIGKILL, or ends and with which [`End`]. It takes `now` and does no
//! I/O, so every path is unit-tested without processes or sleeps.
//! Invariants: once stopping, the state only moves forward (running → stopping → killed →
//! ended); supervised processes get `grace` after the stop signal, then SIGKILL, then 2 s for
//! pipes that processes outside their groups still hold; the status of `-- CMD` is kept from
//! the moment it ended and is the exit status whatever ends the run.

use std::time::{Duration, Instant};

/// Why the reactor stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// All input was read.
    Eof,
    /// SIGTERM or SIGINT.
    Signal,
    /// The `-- CMD` process ended with this status (128 + N when killed by signal N).
    Command(i32),
}

/// How long pipes may stay open after SIGKILL (held by processes outside our groups).
const AFTER_KILL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    /// The stop signal was sent; SIGKILL at `deadline`.
    Stopping {
        deadline: Instant,
    },
    /// SIGKILL was sent; give up on open pipes at `deadline`.
    Killed {
        deadline: Instant,
    },
}

/// What a terminating signal means now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnTerm {
    /// Already stopping: nothing more to do.
    Ignore,
    /// Nothing is supervised any more: end now.
    EndNow,
    /// Forward the signal to the supervised processes and wait for them; stop reading the
    /// inputs that are not theirs.
    Forward,
}

/// What the reactor must do after a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Continue,
    /// The grace period is over: send SIGKILL (and say how many were still running).
    Kill {
        running: usize,
    },
    End(End),
}

/// The stop state machine (see the module doc).
#[derive(Debug)]
pub(crate) struct Shutdown {
    grace: Duration,
    state: State,
    /// The status of `-- CMD`, once it ended.
    command: Option<i32>,
}

impl Shutdown {
    pub(crate) fn new(grace: Duration) -> Shutdown {
        Shutdown {
            grace,
            state: State::Running,
            command: None,
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.state != State::Running
    }

    /// When the reactor must wake up for the next decision, if stopping.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Running => None,
            State::Stopping { deadline } | State::Killed { deadline } => Some(deadline),
        }
    }

    /// SIGTERM or SIGINT arrived at `now` with `running` supervised processes.
    pub(crate) fn on_term(&mut self, now: Instant, running: usize) -> OnTerm {
        if self.stopping() {
            return OnTerm::Ignore;
        }
        if running == 0 {
            return OnTerm::EndNow;
        }
        self.state = State::Stopping {
            deadline: now + self.grace,
        };
        OnTerm::Forward
    }

    /// `-- CMD` ended with `status` at `now`. Returns whether the other supervised processes
    /// must now be sent SIGTERM (the first stop).
    pub(crate) fn on_command_end(&mut self, status: i32, now: Instant) -> bool {
        self.command = Some(status);
        if self.stopping() {
            return false;
        }
        self.state = State::Stopping {
            deadline: now + self.grace,
        };
        true
    }

    fn end(&self) -> End {
        self.command.map_or(End::Signal, End::Command)
    }

    /// Decide at `now`, with `running` supervised processes and whether any of their pipes is
    /// still open. Only meaningful while stopping (running: `Continue`).
    pub(crate) fn decide(&mut self, now: Instant, running: usize, pipes_open: bool) -> Decision {
        match self.state {
            State::Running => Decision::Continue,
            State::Stopping { deadline } => {
                if running == 0 && !pipes_open {
                    Decision::End(self.end())
                } else if now >= deadline {
                    self.state = State::Killed {
                        deadline: now + AFTER_KILL,
                    };
                    Decision::Kill { running }
                } else {
                    Decision::Continue
                }
            }
            State::Killed { deadline } => {
                if running == 0 || now >= deadline {
                    Decision::End(self.end())
                } else {
                    Decision::Continue
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn a_signal_with_nothing_supervised_ends_at_once() {
        let mut s = Shutdown::new(GRACE);
        assert_eq!(s.on_term(Instant::now(), 0), OnTerm::EndNow);
        assert!(!s.stopping());
    }

    #[test]
    fn supervised_processes_get_the_grace_then_sigkill_then_two_seconds() {
        let t0 = Instant::now();
        let mut s = Shutdown::new(GRACE);
        assert_eq!(s.decide(t0, 2, true), Decision::Continue);
        assert_eq!(s.on_term(t0, 2), OnTerm::Forward);
        assert_eq!(
            s.on_term(t0, 2),
            OnTerm::Ignore,
            "a second signal changes nothing"
        );
        assert_eq!(s.deadline(), Some(t0 + GRACE));
        assert_eq!(s.decide(t0 + GRACE / 2, 1, true), Decision::Continue);
        assert_eq!(s.decide(t0 + GRACE, 1, true), Decision::Kill { running: 1 });
        assert_eq!(s.deadline(), Some(t0 + GRACE + AFTER_KILL));
        // Killed: pipes held by others do not keep it waiting once nothing runs.
        assert_eq!(s.decide(t0 + GRACE, 0, true), Decision::End(End::Signal));
    }

    #[test]
    fn pipes_held_open_after_sigkill_are_given_up() {
        let t0 = Instant::now();
        let mut s = Shutdown::new(GRACE);
        s.on_term(t0, 1);
        assert_eq!(s.decide(t0 + GRACE, 1, true), Decision::Kill { running: 1 });
        let t1 = t0 + GRACE;
        assert_eq!(s.decide(t1 + AFTER_KILL / 2, 1, true), Decision::Continue);
        assert_eq!(
            s.decide(t1 + AFTER_KILL, 1, true),
            Decision::End(End::Signal)
        );
    }

    #[test]
    fn stopped_processes_end_the_run_when_their_pipes_are_read() {
        let t0 = Instant::now();
        let mut s = Shutdown::new(GRACE);
        s.on_term(t0, 1);
        assert_eq!(
            s.decide(t0, 0, true),
            Decision::Continue,
            "last lines unread"
        );
        assert_eq!(s.decide(t0, 0, false), Decision::End(End::Signal));
    }

    #[test]
    fn the_command_status_is_the_end_whatever_ends_the_run() {
        let t0 = Instant::now();
        let mut s = Shutdown::new(GRACE);
        assert!(s.on_command_end(3, t0), "first stop: SIGTERM the others");
        assert_eq!(s.on_term(t0, 1), OnTerm::Ignore);
        assert_eq!(s.decide(t0, 0, false), Decision::End(End::Command(3)));

        let mut s = Shutdown::new(GRACE);
        assert_eq!(s.on_term(t0, 2), OnTerm::Forward);
        assert!(!s.on_command_end(143, t0), "already stopping");
        assert_eq!(s.decide(t0, 0, false), Decision::End(End::Command(143)));
    }
}
