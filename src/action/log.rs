//! `log:[PREFIX]`: write `<date> - ALARM: PREFIX MESSAGE` into the log output.
//!
//! The line goes to the log output only (never through the matcher, so it cannot raise alarms),
//! with exactly one `\n` at its end. The date is `ctime()`'s, as uWSGI's `uwsgi_log_verbose`.

use super::Ctx;
use crate::report::report;
use crate::sys;

/// A `log:` action.
#[derive(Debug)]
pub(crate) struct Log {
    prefix: String,
    /// The start of the last line: (Unix second, `<ctime> - ALARM: PREFIX `).
    head: (u64, Vec<u8>),
}

/// Most bytes of lines a lane keeps before it writes them (see [`Log::fire`]).
pub(crate) const BATCH_MAX: usize = 64 * 1024;

impl Log {
    pub(crate) fn parse(arg: &str) -> Log {
        Log {
            prefix: arg.to_string(),
            head: (u64::MAX, Vec::new()),
        }
    }

    /// The line this action writes for `msg` at date `date`.
    #[cfg(test)]
    fn format(&self, date: &str, msg: &[u8]) -> Vec<u8> {
        let mut line = self.head_at(date);
        append(&mut line, &[], msg);
        line
    }

    /// At least the length of the line for a message of `msg_len` bytes.
    pub(crate) fn line_len_bound(&self, msg_len: usize) -> usize {
        // The date (`ctime`'s 24 bytes, 64 to spare), " - ALARM: ", the prefix and a space,
        // the message and a `\n`.
        64 + 10 + self.prefix.len() + 1 + msg_len + 1
    }

    /// What every line at date `date` starts with.
    fn head_at(&self, date: &str) -> Vec<u8> {
        let mut head = Vec::with_capacity(date.len() + self.prefix.len() + 11);
        head.extend_from_slice(date.as_bytes());
        head.extend_from_slice(b" - ALARM: ");
        if !self.prefix.is_empty() {
            head.extend_from_slice(self.prefix.as_bytes());
            head.push(b' ');
        }
        head
    }

    /// Add the line for `msg` to the lane's `batch` (shared by the lane's `log:` alarms, so
    /// lines keep the order of their alarms); the lane writes it when its queue is empty
    /// ([`write_batch`]) or when it reaches [`BATCH_MAX`].
    pub(crate) fn fire(&mut self, msg: &[u8], ctx: &Ctx, batch: &mut Vec<u8>, after: u64) {
        // PERF: the date is formatted once a second and lines are written in batches, one
        // write per drained queue instead of one per alarm (rules10 through a pipe: 150 k
        // alarms a GiB; see PERF.md "log: batches").
        // The coarse clock: no hardware clock read per alarm line (a storm's lane read the
        // clock five times per alarm).
        // The line's start (date, prefix) is made once a second too: one copy per line.
        let now = sys::time::coarse_unix_secs();
        if now != self.head.0 {
            self.head = (now, self.head_at(&sys::time::ctime_now()));
        }
        append(batch, &self.head.1, msg);
        if batch.len() >= BATCH_MAX {
            write_batch(batch, after, ctx);
        }
    }
}

/// `head`, `msg` without its `\n`, and one `\n`.
fn append(out: &mut Vec<u8>, head: &[u8], msg: &[u8]) {
    let body = msg.strip_suffix(b"\n").unwrap_or(msg);
    out.reserve(head.len() + body.len() + 1);
    out.extend_from_slice(head);
    out.extend_from_slice(body);
    out.push(b'\n');
}

/// Write a lane's batch of `log:` lines into the log output, after log position `after`.
pub(crate) fn write_batch(batch: &mut Vec<u8>, after: u64, ctx: &Ctx) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = ctx.output.write_records(batch, after) {
        report!(Log, "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_and_without_prefix() {
        let d = "Mon Nov 23 19:03:42 2026";
        assert_eq!(
            Log::parse("DISK").format(d, b"full\n"),
            b"Mon Nov 23 19:03:42 2026 - ALARM: DISK full\n"
        );
        assert_eq!(
            Log::parse("").format(d, b"no newline"),
            b"Mon Nov 23 19:03:42 2026 - ALARM: no newline\n"
        );
    }
}
