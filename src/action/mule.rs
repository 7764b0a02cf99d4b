//! `mule:N`: write the message, ending in exactly one `\n`, to a mule's standard input.
//!
//! Mules are long-lived workers started with `--mule CMD` (restarted when they die; see
//! `supervise`). `mule:N` writes to the Nth (1-based), `mule:0` to any one that is running and
//! has room (round robin). The write never blocks: a message is written whole only when the pipe has room
//! for all of it (a pipe write of that size is atomic), else it is dropped and counted, and the
//! drops are reported at most once a second. Cheap: runs on the main alarm thread.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::ActionError;
use super::Ctx;
use crate::report::{report, DropCount};

/// A `mule:` action.
#[derive(Debug)]
pub(crate) struct Mule {
    /// 0: any mule; else the mule's number (1-based).
    pub n: usize,
    next: usize,
    dropped: DropCount,
}

impl Mule {
    pub(crate) fn parse(arg: &str) -> Result<Mule, ActionError> {
        let arg = arg.trim();
        let n = if arg.is_empty() {
            0
        } else {
            arg.parse::<usize>().map_err(|_| {
                format!("`{arg}` is not a mule number (0 for any mule, or 1, 2, ...)")
            })?
        };
        Ok(Mule {
            n,
            next: 0,
            dropped: DropCount::default(),
        })
    }

    pub(crate) fn fire(&mut self, alarm: &str, msg: &[u8], ctx: &Ctx) -> super::Outcome {
        let body = msg.strip_suffix(b"\n").unwrap_or(msg);
        let mut line = Vec::with_capacity(body.len() + 1);
        line.extend_from_slice(body);
        line.push(b'\n');
        let mut mules = ctx.mules.lock().unwrap_or_else(|p| p.into_inner());
        let count = mules.len().max(1);
        // `mule:N`: that one; `mule:0`: the first running mule with room, round robin.
        let candidates: Vec<usize> = if self.n > 0 {
            vec![self.n - 1]
        } else {
            (0..count).map(|k| (self.next + k) % count).collect()
        };
        let mut sent = false;
        for i in candidates {
            let Some(Some(stdin)) = mules.get_mut(i) else {
                continue;
            };
            let room = crate::sys::pipe_free(stdin.as_raw_fd()).unwrap_or(0);
            if room >= line.len() && stdin.write_all(&line).is_ok() {
                self.next = i + 1;
                sent = true;
                break;
            }
        }
        drop(mules);
        if !sent {
            self.dropped.add(1);
        }
        if let Some((new, total)) = self.dropped.due(Instant::now(), false) {
            report!(
                Mule,
                "alarm \"{alarm}\": mule {} is not running or not reading: {new} message(s) dropped ({total} in all)",
                if self.n == 0 { "(any)".to_string() } else { self.n.to_string() },
            );
        }
        if sent {
            super::Outcome::Done
        } else {
            super::Outcome::Dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mule_numbers() {
        assert_eq!(Mule::parse("2").unwrap().n, 2);
        assert_eq!(Mule::parse("").unwrap().n, 0);
        assert!(Mule::parse("x").unwrap_err().to_string().contains("`x`"));
    }
}
