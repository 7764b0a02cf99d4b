//! Local dates in the two shapes logalarm writes: C's `ctime()` (uWSGI's own log lines) and
//! RFC 5322 (mail `Date:` headers).
//!
//! Role: the `localtime_r` call and the formatting around it. Invariant: never fails; a date the
//! C library cannot convert prints as a fixed placeholder of the same shape.
//! Rejected alternative: `chrono`/`time` — a dependency for two formats and the local offset,
//! which `localtime_r` gives with the system's time zone rules.

/// The local time now, broken down; `None` if the C library cannot convert it.
fn local_now() -> Option<libc::tm> {
    // SAFETY: `time(NULL)` has no preconditions.
    local(unsafe { libc::time(std::ptr::null_mut()) })
}

/// `now` (seconds since the epoch) as local time, broken down.
// (libc marks `time_t` deprecated on musl targets: its width follows musl's own, 64 bits since
// musl 1.2, which is what the static build links.)
#[allow(deprecated)]
fn local(now: libc::time_t) -> Option<libc::tm> {
    // SAFETY: an all-zero `tm` is a valid value for the out-parameter.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    ok.then_some(tm)
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn day_month(tm: &libc::tm) -> (&'static str, &'static str) {
    (
        DAYS.get(tm.tm_wday as usize).copied().unwrap_or("???"),
        MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???"),
    )
}

/// Seconds since the epoch from the kernel's coarse clock (a few milliseconds behind, no
/// hardware clock read): for dates shown to the second.
pub(crate) fn coarse_unix_secs() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
    }
    u64::try_from(ts.tv_sec).unwrap_or(0)
}

/// The local time formatted as C's `ctime()` does, without the newline:
/// `Mon Nov 23 19:03:42 2026` (the date uWSGI puts in front of its own log lines).
pub(crate) fn ctime_now() -> String {
    let Some(tm) = local_now() else {
        return String::from("??? ??? ?? ??:??:?? ????");
    };
    let (day, month) = day_month(&tm);
    format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}",
        day,
        month,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// `t` as local time, `2026-12-01 17:40:03` (the times in digests).
#[allow(deprecated)] // `libc::time_t` on musl: see `local`
pub(crate) fn local_iso(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Some(tm) = libc::time_t::try_from(secs).ok().and_then(local) else {
        return String::from("????-??-?? ??:??:??");
    };
    format!(
        "{}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The local date for a mail `Date:` header (RFC 5322): `Mon, 23 Nov 2026 19:03:42 +0100`.
pub(crate) fn rfc5322_now() -> String {
    let Some(tm) = local_now() else {
        return String::from("Thu, 01 Jan 1970 00:00:00 +0000");
    };
    let (day, month) = day_month(&tm);
    let off = tm.tm_gmtoff / 60;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        day,
        tm.tm_mday,
        month,
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_has_the_ctime_shape() {
        let s = ctime_now();
        assert_eq!(s.len(), 24, "{s:?}");
        assert_eq!(&s[3..4], " ");
        assert_eq!(&s[13..14], ":");
    }
}
