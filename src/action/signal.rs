//! `signal:N`: send POSIX signal N to every supervised process (its whole process group).
//!
//! uWSGI's signals have no meaning outside uWSGI, so the standalone equivalent signals what
//! logalarm supervises (`--attach-daemon`, `-- CMD`). N is checked at start-up (1 to 64), and an
//! alarm of this type without any supervised process is a start-up error (see `plan`). Cheap: it
//! runs on the main alarm thread.

use super::ActionError;
use super::Ctx;
use crate::report::report;

/// A `signal:` action.
#[derive(Debug)]
pub(crate) struct Signal {
    pub signum: i32,
}

impl Signal {
    pub(crate) fn parse(arg: &str) -> Result<Signal, ActionError> {
        match arg.trim().parse::<i32>() {
            Ok(n) if (1..=64).contains(&n) => Ok(Signal { signum: n }),
            _ => Err(ActionError::from(format!(
                "`{}` is not a signal number (1 to 64)",
                arg.trim()
            ))),
        }
    }

    /// Signal every supervised process group; whether at least one got it.
    pub(crate) fn fire(&mut self, alarm: &str, ctx: &Ctx) -> bool {
        let pids: Vec<i32> = ctx.pids.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut sent = false;
        if pids.is_empty() {
            report!(
                Signal,
                "alarm \"{alarm}\": no supervised process is running; signal {} not sent",
                self.signum
            );
        }
        for pid in pids {
            match crate::sys::kill(-pid, self.signum) {
                Ok(()) => sent = true,
                Err(e) => report!(
                    Signal,
                    "alarm \"{alarm}\": signal {} to process group {pid}: {e}",
                    self.signum
                ),
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_numbers() {
        assert_eq!(Signal::parse("17").unwrap().signum, 17);
        assert!(Signal::parse("0").is_err());
        assert!(Signal::parse("65").is_err());
        assert!(Signal::parse("USR1")
            .unwrap_err()
            .to_string()
            .contains("USR1"));
    }
}
