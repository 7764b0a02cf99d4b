//! The time a log line carries, for `replay`'s virtual clock.
//!
//! Role: find a timestamp near the start of a line and turn it into microseconds since the
//! Unix epoch. Recognised without being told: ISO 8601 and its log variants
//! (`2015-10-18 18:01:47,978`, `2026-12-01T20:10:04.5+01:00`, `2005-06-03-15.42.50.675872`,
//! `20171223-22:15:29:606`), syslog (`Dec  1 20:10:04`), ctime as Apache's error log and uWSGI
//! write it (`Sun Dec 04 04:47:44 2005`), the common log format of Apache and nginx access logs
//! (`01/Dec/2026:20:10:04 +0000`), and epoch seconds as loghub's BGL and HPC logs carry them (a
//! ten-digit number, or thirteen digits of milliseconds). Anything else is given with
//! `--time-format` (strftime-like: `%Y %y %m %d %e %H %M %S %f %b %a %z %s %%`).
//!
//! Invariants: only the first [`SEARCH`] bytes are looked at, and a timestamp starts at the
//! line's start or after a byte that is not a letter or digit, so a number inside a word or a
//! longer number is never taken for a time. Timestamps without a zone are taken as UTC (only
//! differences matter to anti-flood); without a year (syslog), the year is `--year` or the
//! current one, and goes up by one when the month falls back by more than six (December to
//! January). Parsing costs nothing on lines that do not raise an alarm: it is called for
//! raising lines only.

/// How far into a line a timestamp is looked for.
pub(crate) const SEARCH: usize = 160;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];
const DAYS: [&[u8; 3]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];

/// Seconds from 1970-01-01 to the first of 2000 and of 2100: the range of epoch numbers
/// taken for times.
const EPOCH_MIN: i64 = 946_684_800;
const EPOCH_MAX: i64 = 4_102_444_800;

/// A `--time-format` piece.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Year4,
    Year2,
    Month,
    MonthName,
    Day,
    DaySpace,
    DayName,
    Hour,
    Minute,
    Second,
    Fraction,
    Zone,
    Epoch,
    Literal(u8),
}

/// A `--time-format`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Format(Vec<Piece>);

impl Format {
    /// Parse a strftime-like format; an unknown `%` code is an error naming it.
    pub(crate) fn parse(f: &str) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut it = f.bytes();
        while let Some(b) = it.next() {
            if b != b'%' {
                pieces.push(Piece::Literal(b));
                continue;
            }
            let p = match it.next() {
                Some(b'Y') => Piece::Year4,
                Some(b'y') => Piece::Year2,
                Some(b'm') => Piece::Month,
                Some(b'b') => Piece::MonthName,
                Some(b'd') => Piece::Day,
                Some(b'e') => Piece::DaySpace,
                Some(b'a') => Piece::DayName,
                Some(b'H') => Piece::Hour,
                Some(b'M') => Piece::Minute,
                Some(b'S') => Piece::Second,
                Some(b'f') => Piece::Fraction,
                Some(b'z') => Piece::Zone,
                Some(b's') => Piece::Epoch,
                Some(b'%') => Piece::Literal(b'%'),
                Some(c) => {
                    return Err(format!(
                        "unknown code %{} (known: %Y %y %m %d %e %H %M %S %f %b %a %z %s %%)",
                        char::from(c)
                    ))
                }
                None => return Err("a lone % at the end".to_string()),
            };
            pieces.push(p);
        }
        if !pieces
            .iter()
            .any(|p| matches!(p, Piece::Hour | Piece::Epoch))
        {
            return Err("it has no time of day (%H) and no epoch (%s)".to_string());
        }
        Ok(Format(pieces))
    }
}

/// The fields of a timestamp before they become a number.
#[derive(Debug, Default, Clone, Copy)]
struct Fields {
    year: Option<i64>,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
    /// Offset east of UTC, in seconds.
    zone: i64,
    /// Seconds since the epoch, when the line gives them directly.
    epoch: Option<i64>,
}

/// The clock of one replay: the year for timestamps without one, and the month last seen
/// (for the year's roll-over).
#[derive(Debug)]
pub(crate) struct Clock {
    year: i64,
    last_month: i64,
    format: Option<Format>,
}

impl Clock {
    pub(crate) fn new(year: i64, format: Option<Format>) -> Clock {
        Clock {
            year,
            last_month: 0,
            format,
        }
    }

    /// The time `line` carries, in microseconds since the epoch.
    pub(crate) fn parse(&mut self, line: &[u8]) -> Option<i64> {
        let line = &line[..line.len().min(SEARCH)];
        for at in 0..line.len() {
            if at > 0 && line[at - 1].is_ascii_alphanumeric() {
                continue;
            }
            // A given format may start with punctuation (`[%m.%d ...`); the known ones start
            // with a letter or a digit.
            if self.format.is_none() && !line[at].is_ascii_alphanumeric() {
                continue;
            }
            let found = match &self.format {
                Some(f) => given(&f.0, &line[at..]),
                None => known(&line[at..]),
            };
            if let Some(f) = found {
                return self.micros(f);
            }
        }
        None
    }

    fn micros(&mut self, f: Fields) -> Option<i64> {
        if let Some(e) = f.epoch {
            return Some(e * 1_000_000 + f.micros);
        }
        let year = match f.year {
            Some(y) => y,
            None => {
                if self.last_month != 0 && f.month + 6 < self.last_month {
                    self.year += 1;
                }
                self.year
            }
        };
        self.last_month = f.month;
        let ok = (1..=12).contains(&f.month)
            && (1..=31).contains(&f.day)
            && f.hour < 24
            && f.minute < 60
            && f.second <= 60;
        if !ok {
            return None;
        }
        let days = days_from_civil(year, f.month, f.day);
        let secs = days * 86_400 + f.hour * 3600 + f.minute * 60 + f.second - f.zone;
        Some(secs * 1_000_000 + f.micros)
    }
}

/// Days from 1970-01-01 to the given date of the proleptic Gregorian calendar.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `micros` (since the epoch) as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub(crate) fn show(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let ms = micros.rem_euclid(1_000_000) / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{ms:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `micros` as RFC 3339 (`2026-12-01T20:10:04.123Z`), for JSON.
pub(crate) fn rfc3339(micros: i64) -> String {
    let s = show(micros);
    format!("{}T{}Z", &s[..10], &s[11..])
}

pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A cursor over the bytes after a candidate start.
struct Cur<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    fn one_of(&mut self, set: &[u8]) -> Option<u8> {
        let b = self.peek()?;
        set.contains(&b).then(|| {
            self.i += 1;
            b
        })
    }

    /// Exactly `n` digits.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let s = self.s.get(self.i..self.i + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(s.iter().fold(0, |a, &d| a * 10 + i64::from(d - b'0')))
    }

    /// One or two digits (a day or hour written without padding).
    fn digits12(&mut self) -> Option<i64> {
        let a = self.digits(1)?;
        match self.peek() {
            Some(b) if b.is_ascii_digit() => {
                self.i += 1;
                Some(a * 10 + i64::from(b - b'0'))
            }
            _ => Some(a),
        }
    }

    /// Up to nine digits of a fraction of a second, as microseconds.
    fn fraction(&mut self) -> Option<i64> {
        let start = self.i;
        while self.i - start < 9 && self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        if digits.is_empty() {
            return None;
        }
        let mut us = 0;
        for k in 0..6 {
            us = us * 10 + digits.get(k).map_or(0, |&d| i64::from(d - b'0'));
        }
        Some(us)
    }

    fn name(&mut self, names: &[&[u8; 3]]) -> Option<i64> {
        let s = self.s.get(self.i..self.i + 3)?;
        let k = names.iter().position(|n| n.as_slice() == s)?;
        self.i += 3;
        Some(k as i64 + 1)
    }

    fn spaces(&mut self) -> Option<()> {
        self.byte(b' ')?;
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
        Some(())
    }

    /// `Z`, `+HH:MM`, `+HHMM` or `+HH`, as seconds east of UTC (absent: 0).
    fn zone(&mut self) -> i64 {
        if self.byte(b'Z').is_some() {
            return 0;
        }
        let save = self.i;
        let parsed = (|| {
            let sign = if self.one_of(b"+-")? == b'-' { -1 } else { 1 };
            let h = self.digits(2)?;
            let _ = self.byte(b':');
            let m = self.digits(2).unwrap_or(0);
            Some(sign * (h * 3600 + m * 60))
        })();
        parsed.unwrap_or_else(|| {
            self.i = save;
            0
        })
    }

    /// `HH<sep>MM<sep>SS` with `:` or `.` as separators, then an optional fraction after
    /// `.`, `,` or `:`.
    fn clock(&mut self, f: &mut Fields) -> Option<()> {
        f.hour = self.digits(2)?;
        self.one_of(b":.")?;
        f.minute = self.digits(2)?;
        self.one_of(b":.")?;
        f.second = self.digits(2)?;
        let save = self.i;
        if self.one_of(b".,:").is_some() {
            match self.fraction() {
                Some(us) => f.micros = us,
                None => self.i = save,
            }
        }
        Some(())
    }

    /// The timestamp ends here: not inside a longer number.
    fn ends(&self) -> Option<()> {
        (!self.peek().is_some_and(|b| b.is_ascii_digit())).then_some(())
    }
}

/// The formats recognised without `--time-format`, tried in turn at one start.
fn known(s: &[u8]) -> Option<Fields> {
    let first = s[0];
    if first.is_ascii_digit() {
        iso(s).or_else(|| clf(s)).or_else(|| epoch(s))
    } else {
        ctime(s).or_else(|| syslog(s))
    }
}

/// `YYYY-MM-DD[T| |-]HH:MM:SS[.frac][zone]`, `/` for `-` too, and the compact
/// `YYYYMMDD-HH:MM:SS`.
fn iso(s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    let mut f = Fields {
        year: Some(c.digits(4)?),
        ..Fields::default()
    };
    if let Some(sep) = c.one_of(b"-/") {
        f.month = c.digits(2)?;
        c.byte(sep)?;
        f.day = c.digits(2)?;
    } else {
        f.month = c.digits(2)?;
        f.day = c.digits(2)?;
    }
    c.one_of(b"T -")?;
    c.clock(&mut f)?;
    f.zone = c.zone();
    c.ends()?;
    Some(f)
}

/// `DD/Mon/YYYY:HH:MM:SS[ +ZZZZ]` (Apache and nginx access logs).
fn clf(s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    let mut f = Fields {
        day: c.digits(2)?,
        ..Fields::default()
    };
    c.byte(b'/')?;
    f.month = c.name(&MONTHS)?;
    c.byte(b'/')?;
    f.year = Some(c.digits(4)?);
    c.byte(b':')?;
    c.clock(&mut f)?;
    if c.byte(b' ').is_some() && matches!(c.peek(), Some(b'+' | b'-')) {
        f.zone = c.zone();
    }
    Some(f)
}

/// Ten digits of epoch seconds (optionally `.frac`), or thirteen of milliseconds.
fn epoch(s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    if let Some(ms) = c.digits(13) {
        c.ends()?;
        let secs = ms / 1000;
        return (EPOCH_MIN..EPOCH_MAX).contains(&secs).then_some(Fields {
            epoch: Some(secs),
            micros: ms % 1000 * 1000,
            ..Fields::default()
        });
    }
    let mut c = Cur { s, i: 0 };
    let secs = c.digits(10)?;
    let mut f = Fields {
        epoch: Some(secs),
        ..Fields::default()
    };
    if c.byte(b'.').is_some() {
        f.micros = c.fraction()?;
    }
    c.ends()?;
    (EPOCH_MIN..EPOCH_MAX).contains(&secs).then_some(f)
}

/// `Www Mon DD HH:MM:SS[.frac] YYYY` (ctime: Apache's error log, uWSGI's request log).
fn ctime(s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    c.name(&DAYS)?;
    c.spaces()?;
    let mut f = month_day_clock(&mut c)?;
    c.spaces()?;
    f.year = Some(c.digits(4)?);
    c.ends()?;
    Some(f)
}

/// `Mon DD HH:MM:SS[.frac]` (syslog: no year).
fn syslog(s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    let f = month_day_clock(&mut c)?;
    c.ends()?;
    Some(f)
}

/// `Mon DD HH:MM:SS[.frac]`, the part ctime and syslog share.
fn month_day_clock(c: &mut Cur<'_>) -> Option<Fields> {
    let mut f = Fields {
        month: c.name(&MONTHS)?,
        ..Fields::default()
    };
    c.spaces()?;
    f.day = c.digits12()?;
    c.spaces()?;
    c.clock(&mut f)?;
    Some(f)
}

/// A `--time-format` at one start.
fn given(pieces: &[Piece], s: &[u8]) -> Option<Fields> {
    let mut c = Cur { s, i: 0 };
    let mut f = Fields::default();
    for p in pieces {
        match p {
            Piece::Year4 => f.year = Some(c.digits(4)?),
            Piece::Year2 => {
                let y = c.digits(2)?;
                f.year = Some(if y < 69 { 2000 + y } else { 1900 + y });
            }
            Piece::Month => f.month = c.digits(2)?,
            Piece::MonthName => f.month = c.name(&MONTHS)?,
            Piece::Day => f.day = c.digits(2)?,
            Piece::DaySpace => {
                if c.peek() == Some(b' ') {
                    c.i += 1;
                }
                f.day = c.digits12()?;
            }
            Piece::DayName => {
                c.name(&DAYS)?;
            }
            Piece::Hour => f.hour = c.digits(2)?,
            Piece::Minute => f.minute = c.digits(2)?,
            Piece::Second => f.second = c.digits(2)?,
            Piece::Fraction => f.micros = c.fraction()?,
            Piece::Zone => f.zone = c.zone(),
            Piece::Epoch => {
                let start = c.i;
                while c.peek().is_some_and(|b| b.is_ascii_digit()) && c.i - start < 12 {
                    c.i += 1;
                }
                let digits = std::str::from_utf8(&s[start..c.i]).ok()?;
                f.epoch = Some(digits.parse().ok()?);
            }
            Piece::Literal(b) => c.byte(*b)?,
        }
    }
    if f.epoch.is_none() && f.day == 0 {
        // A format with a time of day only: the first of January of the clock's year.
        f.month = 1;
        f.day = 1;
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: &str) -> Option<String> {
        Clock::new(2026, None).parse(line.as_bytes()).map(show)
    }

    #[test]
    fn recognises_the_usual_formats() {
        let cases = [
            ("2015-10-18 18:01:47,978 INFO [main]", "2015-10-18 18:01:47.978"),
            ("2026-12-01T20:10:04.5+01:00 x", "2026-12-01 19:10:04.500"),
            ("2026-12-01T20:10:04Z x", "2026-12-01 20:10:04.000"),
            ("- 1117838570 2005.06.03 R02", "2005-06-03 22:42:50.000"),
            ("x 2005-06-03-15.42.50.675872 R02", "2005-06-03 15:42:50.675"),
            ("20171223-22:15:29:606|Step_LSC|", "2017-12-23 22:15:29.606"),
            ("Jun 14 15:16:01 combo sshd", "2026-06-14 15:16:01.000"),
            ("Dec  1 20:10:04 host x", "2026-12-01 20:10:04.000"),
            ("[Sun Dec 04 04:47:44 2005] [error]", "2005-12-04 04:47:44.000"),
            (
                "1.2.3.4 - - [01/Dec/2026:20:10:04 +0100] \"GET /\"",
                "2026-12-01 19:10:04.000",
            ),
            (
                "[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {34 vars in 400 bytes} [Tue Dec  1 20:10:04 2026] GET /",
                "2026-12-01 20:10:04.000",
            ),
            (
                "134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component",
                "2004-02-26 14:12:22.000",
            ),
            ("{\"ts\":1764619804123,\"level\":\"error\"}", "2025-12-01 20:10:04.123"),
        ];
        for (line, want) in cases {
            assert_eq!(at(line).as_deref(), Some(want), "{line}");
        }
    }

    #[test]
    fn numbers_that_are_not_times() {
        for line in [
            "pid 12345 exited",
            "block 11178385701 moved",
            "id=x1117838570 done",
            "10.0.0.1 GET /index 200",
            "2026-13-01 10:00:00 bad month",
            "ERROR: 99:99:99",
        ] {
            assert_eq!(at(line), None, "{line}");
        }
    }

    #[test]
    fn syslog_year_rolls_over() {
        let mut c = Clock::new(2025, None);
        let dec = c.parse(b"Dec 31 23:59:59 h x").map(show);
        let jan = c.parse(b"Jan  1 00:00:01 h x").map(show);
        assert_eq!(dec.as_deref(), Some("2025-12-31 23:59:59.000"));
        assert_eq!(jan.as_deref(), Some("2026-01-01 00:00:01.000"));
    }

    #[test]
    fn given_formats() {
        let f = Format::parse("%y%m%d %H%M%S").unwrap();
        let mut c = Clock::new(2026, Some(f));
        assert_eq!(
            c.parse(b"081109 203615 148 INFO dfs").map(show).as_deref(),
            Some("2008-11-09 20:36:15.000")
        );
        let f = Format::parse("[%m.%d %H:%M:%S]").unwrap();
        let mut c = Clock::new(2016, Some(f));
        assert_eq!(
            c.parse(b"[10.30 16:49:06] chrome.exe").map(show).as_deref(),
            Some("2016-10-30 16:49:06.000")
        );
        assert!(Format::parse("%Q").unwrap_err().contains("%Q"));
        assert!(Format::parse("%Y-%m-%d").is_err());
    }

    #[test]
    fn calendar_round_trip() {
        for days in [-1000, 0, 1, 59, 365, 10_957, 20_000, 47_482] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
