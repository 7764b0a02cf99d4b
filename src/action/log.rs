//! `log:[PREFIX]`: write `<date> - ALARM: PREFIX MESSAGE` into the log output.
//!
//! The line goes to the log output only (never through the matcher, so it cannot raise alarms),
//! with exactly one `\n` at its end. The date is `ctime()`'s, as uWSGI's `uwsgi_log_verbose`.

use super::Ctx;
use crate::sys;

/// A `log:` action.
#[derive(Debug)]
pub struct Log {
    prefix: String,
}

impl Log {
    pub fn parse(arg: &str) -> Log {
        Log {
            prefix: arg.to_string(),
        }
    }

    /// The line this action writes for `msg` at date `date`.
    pub fn format(&self, date: &str, msg: &[u8]) -> Vec<u8> {
        let body = msg.strip_suffix(b"\n").unwrap_or(msg);
        let mut line = Vec::with_capacity(date.len() + self.prefix.len() + body.len() + 16);
        line.extend_from_slice(date.as_bytes());
        line.extend_from_slice(b" - ALARM: ");
        if !self.prefix.is_empty() {
            line.extend_from_slice(self.prefix.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(body);
        line.push(b'\n');
        line
    }

    pub fn fire(&mut self, msg: &[u8], ctx: &Ctx) {
        let line = self.format(&sys::ctime_now(), msg);
        if let Err(e) = ctx.output.write_record(&line) {
            eprintln!("[uwsgi-alarm-log] {e}");
        }
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
