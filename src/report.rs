//! Diagnostics on standard error: tagged lines and rate-limited loss counts.
//!
//! Role: every line logalarm writes about itself starts with a `[uwsgi-alarm…]` tag ([`Tag`]),
//! as uWSGI's do, so that log shippers and logalarm's own rules recognise it (the matcher never
//! matches a line starting with `[uwsgi-alarm`, see `rules::SELF_PREFIX`). [`report!`] writes
//! one; [`DropCount`] is the one policy for "things were lost": counted always, reported at most
//! once per [`EVERY`] with the new and the total count, and once more at the end.
//! Invariants: writing a report never panics and never blocks the log path on a closed or
//! broken standard error (the write error is ignored: there is nowhere left to say it); a
//! message of several lines gets the tag on each line.
//! Rejected alternative: the `log`/`tracing` facades — the lines' exact shape is uWSGI's and
//! part of the interface (tests and users grep for it), and logalarm has one sink.

use std::fmt;
use std::io::Write;
use std::time::{Duration, Instant};

/// Who is speaking: the tag in front of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `[uwsgi-alarm]`: the core (dispatch, reactor, supervision, monitors).
    Alarm,
    Cmd,
    Curl,
    Fd,
    Log,
    Mule,
    Signal,
    Speech,
    Xmpp,
}

impl Tag {
    pub(crate) const fn prefix(self) -> &'static str {
        match self {
            Tag::Alarm => "[uwsgi-alarm]",
            Tag::Cmd => "[uwsgi-alarm-cmd]",
            Tag::Curl => "[uwsgi-alarm-curl]",
            Tag::Fd => "[uwsgi-alarm-fd]",
            Tag::Log => "[uwsgi-alarm-log]",
            Tag::Mule => "[uwsgi-alarm-mule]",
            Tag::Signal => "[uwsgi-alarm-signal]",
            Tag::Speech => "[uwsgi-alarm-speech]",
            Tag::Xmpp => "[uwsgi-alarm-xmpp]",
        }
    }
}

/// The tagged text: each line of `args` behind `tag`'s prefix, `\n`-terminated.
pub(crate) fn format(tag: Tag, args: fmt::Arguments<'_>) -> String {
    let text = args.to_string();
    let mut out = String::with_capacity(text.len() + 24);
    for line in text.split('\n') {
        out.push_str(tag.prefix());
        out.push(' ');
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Write [`format`]'s text to standard error in one write. Standard error may share a
/// non-blocking pipe with standard output (see `output`): a full pipe is waited on, at most
/// a second.
pub(crate) fn line(tag: Tag, args: fmt::Arguments<'_>) {
    write_stderr(format(tag, args).as_bytes());
}

/// An untagged line on standard error (start-up errors and warnings), never a panic: a
/// closed or broken standard error is ignored, there is nowhere left to say it.
pub(crate) fn plain(args: fmt::Arguments<'_>) {
    let mut text = args.to_string();
    text.push('\n');
    write_stderr(text.as_bytes());
}

fn write_stderr(text: &[u8]) {
    let mut rest = text;
    let mut err = std::io::stderr().lock();
    let mut waits = 0;
    while !rest.is_empty() {
        match err.write(rest) {
            Ok(0) => return,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && waits < 10 => {
                waits += 1;
                let _ = crate::sys::wait_fd(2, libc::POLLOUT, 100);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// `report!(Tag, "format", args...)`: one tagged diagnostic on standard error.
macro_rules! report {
    ($tag:ident, $($arg:tt)*) => {
        $crate::report::line($crate::report::Tag::$tag, format_args!($($arg)*))
    };
}
pub(crate) use report;

/// The shortest time between two reports of the same count.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// A count of lost things and how much of it was reported: reports come at most once per
/// [`EVERY`] (a storm must not become a storm of reports), and `force` (at the end) reports
/// what is left.
#[derive(Debug, Default)]
pub(crate) struct DropCount {
    total: u64,
    reported: u64,
    last: Option<Instant>,
}

impl DropCount {
    /// Count `n` more.
    pub(crate) fn add(&mut self, n: u64) {
        self.total += n;
    }

    /// Take the counts to report at `now`: `(new since the last report, total)`, or `None` when
    /// nothing is new or the last report is too recent (unless `force`).
    pub(crate) fn due(&mut self, now: Instant, force: bool) -> Option<(u64, u64)> {
        self.due_of(self.total, now, force)
    }

    /// [`DropCount::due`] for a total counted elsewhere (an atomic shared with other threads).
    pub(crate) fn due_of(&mut self, total: u64, now: Instant, force: bool) -> Option<(u64, u64)> {
        if total <= self.reported {
            return None;
        }
        if !force
            && self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return None;
        }
        let new = total - self.reported;
        self.reported = total;
        self.last = Some(now);
        Some((new, total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_is_tagged() {
        let s = format(Tag::Cmd, format_args!("a {}\nb", 1));
        assert_eq!(s, "[uwsgi-alarm-cmd] a 1\n[uwsgi-alarm-cmd] b\n");
    }

    #[test]
    fn drops_are_reported_at_most_once_a_second() {
        let t0 = Instant::now();
        let mut d = DropCount::default();
        assert_eq!(d.due(t0, false), None);
        d.add(3);
        assert_eq!(d.due(t0, false), Some((3, 3)));
        d.add(2);
        assert_eq!(d.due(t0 + Duration::from_millis(500), false), None);
        assert_eq!(d.due(t0 + Duration::from_millis(1000), false), Some((2, 5)));
        d.add(1);
        assert_eq!(d.due(t0 + Duration::from_millis(1001), true), Some((1, 6)));
        assert_eq!(d.due(t0 + Duration::from_secs(9), true), None);
        assert_eq!(d.total, 6);
    }
}
