//! uWSGI-flavoured ini files, turned into the same option stream as the command line.
//!
//! Role: read `[uwsgi]` and `[logalarm]` sections, keep every `key = value` in file order (repeated
//! keys append, as uWSGI does) and hand each one to the option table with its file and line, so
//! that an ini file is exactly a list of `--key value` arguments. Other sections are skipped.
//! Invariant: values are taken verbatim after trimming surrounding white space: no escapes, no
//! quotes, no inline comments (`\d+` and `;key=val` alarm options must survive untouched).
//! Rejected alternative: `rust-ini`, which eats backslashes unless told not to and does not keep
//! repeated keys in order.

use std::path::Path;

/// One `key = value` line of an accepted section, borrowed from the file's text.
// PERF: borrowed, not copied: Debian's 2,101 rules in one ini file were 2 allocations a line
// and 0.5 MB of fresh memory (~130 page faults of ~3 µs on this VM) before the first line out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniEntry<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// 1-based line number in the file.
    pub line: usize,
}

/// Sections whose keys are logalarm options.
const SECTIONS: [&str; 2] = ["uwsgi", "logalarm"];

/// Largest ini file read (`--ini /dev/zero` must not take the machine's memory).
pub(crate) const MAX_INI_BYTES: u64 = 16 << 20;

/// An ini file's accepted entries, and what was skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) entries: Vec<IniEntry<'a>>,
    /// Whether an accepted section (`[uwsgi]`, `[logalarm]`) was there at all.
    pub(crate) accepted: bool,
    /// Sections skipped whose name differs from an accepted one only in case (uWSGI skips
    /// them too: its section names are compared exactly).
    pub(crate) near_misses: Vec<(String, usize)>,
}

/// Parse ini text. Lines outside an accepted section (`section`, else `[uwsgi]` and
/// `[logalarm]`) are ignored; a line without `=` inside one is a key with an empty value (uWSGI
/// treats `master` alone as `master = true`). A UTF-8 byte order mark at the start is skipped
/// (uWSGI would read `\u{FEFF}[uwsgi]` as no section).
pub(crate) fn parse<'a>(text: &'a str, section: Option<&str>) -> Parsed<'a> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut p = Parsed::default();
    // PERF: room for every line made once (grown by doubling, 0.3 MB of fresh memory for an
    // ini file of 2,101 rules).
    p.entries
        .reserve(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    let out = &mut p.entries;
    let mut in_section = false;
    for (idx, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.strip_suffix(']').unwrap_or(rest).trim();
            let wanted = |s: &str| section.map_or(SECTIONS.contains(&s), |w| w == s);
            let near = |s: &str| match section {
                Some(w) => w.eq_ignore_ascii_case(s),
                None => SECTIONS.iter().any(|x| x.eq_ignore_ascii_case(s)),
            };
            in_section = wanted(name);
            p.accepted |= in_section;
            if !in_section && near(name) {
                p.near_misses.push((name.to_string(), idx + 1));
            }
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        out.push(IniEntry {
            key,
            value,
            line: idx + 1,
        });
    }
    p
}

/// Read an ini file's text (at most [`MAX_INI_BYTES`]): [`parse`] it.
pub(crate) fn load(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    // PERF: read into a buffer of the file's size (the `take` hides the size from
    // `read_to_end`, which then doubled its buffer from 8 KiB: 1 MB of fresh memory for a
    // 420 KB file), and kept as it is when it is UTF-8 (it was copied).
    let hint = file
        .metadata()
        .map_or(0, |m| m.len().min(MAX_INI_BYTES + 1));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0) + 1);
    file.take(MAX_INI_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INI_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_INI_BYTES >> 20),
        ));
    }
    decode(bytes)
}

/// The keys whose values are rules: raw bytes there are PCRE bytes (uWSGI compiles rules
/// without UTF mode), so a non-UTF-8 byte is kept as the escape `\xHH`, which means the same.
pub(crate) const RULE_KEYS: [&str; 7] = [
    "log-alarm",
    "alarm-log",
    "not-log-alarm",
    "not-alarm-log",
    "log-alarm-json",
    "log-alarm-logfmt",
    "alarm-multiline",
];

/// Ini bytes as text: UTF-8, except that rule lines may hold raw bytes (see [`RULE_KEYS`]);
/// a raw byte anywhere else is an error naming its line.
fn decode(bytes: Vec<u8>) -> std::io::Result<String> {
    let bytes = match String::from_utf8(bytes) {
        Ok(s) => return Ok(s),
        Err(e) => e.into_bytes(),
    };
    let mut out = String::with_capacity(bytes.len() + 16);
    for (idx, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if let Ok(s) = std::str::from_utf8(line) {
            out.push_str(s);
            continue;
        }
        let key = line.split(|&b| b == b'=').next().unwrap_or(&[]);
        let key = String::from_utf8_lossy(key).trim().to_string();
        if !RULE_KEYS.contains(&key.as_str()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {}: not UTF-8 (only rule lines may hold raw bytes: they are PCRE bytes)",
                    idx + 1
                ),
            ));
        }
        out.push_str(&rule_bytes(line));
    }
    Ok(out)
}

/// A rule's bytes as text: valid UTF-8 as it is, each other byte as `\xHH` (a raw byte right
/// after a backslash is that byte too, so the backslash goes).
pub(crate) fn rule_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for &b in chunk.invalid() {
            let trailing = out.len() - out.trim_end_matches('\\').len();
            if trailing % 2 == 1 {
                out.pop();
            }
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// uWSGI's magic variables in a config file's text (`uwsgi_open_and_read` applies them to the
/// whole file before parsing it; the command line has none): `%%` is `%`, `%[` is ESC, and a
/// letter or digit names a value of the file or the host: `%p` its absolute path, `%o` the path
/// as given, `%s` its name, `%n` the name without its extension, `%e` the extension, `%d` its
/// directory with a final `/`, `%c` that directory's name, `%0`..`%9` the directory's
/// components, `%v` the working directory, `%h` the host name, `%k` the CPU cores, `%u` `%g`
/// the user and group ids, `%U` `%G` their names, `%t` `%T` the time in seconds and
/// microseconds, `%i` the file's inode, `%j` the hash of its path, `%b` this executable,
/// `%V` the version (upper-case file letters as their lower-case ones). Any other character
/// after `%` is dropped with it, as uWSGI drops it (`usage 9[0-9]%$` is `usage 9[0-9]` there),
/// except `(`: `%(name)` is a placeholder (`super::stream`).
pub(crate) fn magic<'a>(text: &'a str, path: &Path) -> std::borrow::Cow<'a, str> {
    if !text.contains('%') {
        return std::borrow::Cow::Borrowed(text);
    }
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let lossy = |p: &Path| p.to_string_lossy().into_owned();
    let name = lossy(Path::new(abs.file_name().unwrap_or_default()));
    let dir = abs.parent().map(lossy).unwrap_or_default();
    let components: Vec<String> = abs
        .parent()
        .map(|d| {
            d.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let value = |c: char| -> String {
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) => (s.to_string(), e.to_string()),
            None => (name.clone(), String::new()),
        };
        match c {
            'p' | 'P' => lossy(&abs),
            'o' | 'O' => lossy(path),
            's' | 'S' => name.clone(),
            'n' | 'N' => stem,
            'e' | 'E' => ext,
            'd' | 'D' => format!("{}/", dir.trim_end_matches('/')),
            'c' | 'C' => components.last().cloned().unwrap_or_default(),
            '0'..='9' => {
                let i = c as usize - '0' as usize;
                components.get(i).cloned().unwrap_or_default()
            }
            'v' => std::env::current_dir()
                .map(|d| lossy(&d))
                .unwrap_or_default(),
            'h' => crate::sys::uname().nodename,
            'k' => crate::par::cores().to_string(),
            'u' => crate::sys::ids().0.to_string(),
            'g' => crate::sys::ids().1.to_string(),
            'U' => crate::sys::user_name(crate::sys::ids().0).unwrap_or_default(),
            'G' => crate::sys::group_name(crate::sys::ids().1).unwrap_or_default(),
            't' | 'T' => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                match c {
                    't' => now.as_secs().to_string(),
                    _ => now.as_micros().to_string(),
                }
            }
            'i' | 'I' => {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(&abs)
                    .map(|m| m.ino().to_string())
                    .unwrap_or_default()
            }
            'j' | 'J' => {
                // uWSGI's djb33x hash of the absolute path, its bytes in memory order as hex.
                let h = lossy(&abs)
                    .bytes()
                    .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
                h.to_le_bytes().iter().map(|b| format!("{b:02X}")).collect()
            }
            'b' => std::env::current_exe()
                .map(|p| lossy(&p))
                .unwrap_or_default(),
            'V' => env!("CARGO_PKG_VERSION").to_string(),
            _ => String::new(),
        }
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('%') => out.push('%'),
            Some('[') => out.push('\u{1b}'),
            Some('(') => {
                out.push('%');
                continue;
            }
            // A `%` ending a line is dropped, its line end kept.
            Some('\n') | None => continue,
            Some(next) => out.push_str(&value(next)),
        }
        chars.next();
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_only_in_rules_as_pcre_bytes() {
        let text = b"[uwsgi]\nlog-alarm = a caf\xe9 \\\xe8\nalarm = a log:\n";
        let decoded = decode(text.to_vec()).unwrap();
        let got = parse(&decoded, None);
        assert_eq!(got.entries[0].value, "a caf\\xE9 \\xE8");
        let e = decode(b"[uwsgi]\nalarm = a cmd:echo \xe9\n".to_vec()).unwrap_err();
        assert!(e.to_string().contains("line 2: not UTF-8"), "{e}");
    }

    #[test]
    fn keeps_repeats_backslashes_and_semicolons() {
        let text = "; comment\n[other]\nalarm = no\n[uwsgi]\nalarm = a cmd:cat\n# c\n\
                    log-alarm = a \\d+ x;y\nalarm = b log:\nmaster\n[logalarm]\nalarm-freq=0\n";
        let got = parse(text, None);
        assert!(got.accepted);
        let kv: Vec<(&str, &str, usize)> = got
            .entries
            .iter()
            .map(|e| (e.key, e.value, e.line))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("alarm", "a cmd:cat", 5),
                ("log-alarm", "a \\d+ x;y", 7),
                ("alarm", "b log:", 8),
                ("master", "", 9),
                ("alarm-freq", "0", 11),
            ]
        );
    }

    #[test]
    fn value_keeps_inner_equals() {
        let got = parse("[uwsgi]\nalarm = m curl:http://x/?a=b;method=POST\n", None);
        assert_eq!(got.entries[0].value, "m curl:http://x/?a=b;method=POST");
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_sections_compare_exactly() {
        let got = parse("\u{FEFF}[uwsgi]\nalarm-freq = 1\n", None);
        assert!(got.accepted);
        assert_eq!(got.entries.len(), 1);
        let got = parse("[uWSGI]\nalarm-freq = 1\n", None);
        assert!(!got.accepted && got.entries.is_empty());
        assert_eq!(got.near_misses, vec![("uWSGI".to_string(), 1)]);
        assert!(!parse("alarm-freq = 1\n", None).accepted);
    }

    #[test]
    fn magic_variables_as_uwsgi_reads_them() {
        let path = Path::new("/etc/logalarm/app.conf.ini");
        let m = |t: &str| magic(t, path).into_owned();
        assert_eq!(m("no percent"), "no percent");
        assert!(matches!(
            magic("no percent", path),
            std::borrow::Cow::Borrowed(_)
        ));
        // `%%` is `%`; a `%` before anything else but a letter's value or `(` goes with it.
        assert_eq!(m("usage 9[0-9]%%"), "usage 9[0-9]%");
        assert_eq!(m("usage [0-9]+%$"), "usage [0-9]+");
        assert_eq!(m("50% half"), "50half");
        assert_eq!(m("a%\nb"), "a\nb");
        assert_eq!(m("end%"), "end");
        assert_eq!(m("%z%q"), "");
        assert_eq!(m("%[1m"), "\u{1b}1m");
        assert_eq!(m("%(name)"), "%(name)");
        // The file's values (uWSGI 2.0.21's, checked with its `print` option).
        assert_eq!(m("%p|%s|%n|%e|%d|%c|%0|%1|%2"), "/etc/logalarm/app.conf.ini|app.conf.ini|app.conf|ini|/etc/logalarm/|logalarm|etc|logalarm|");
        assert_eq!(
            m("%P %S %N %E %D %C"),
            "/etc/logalarm/app.conf.ini app.conf.ini app.conf ini /etc/logalarm/ logalarm"
        );
        assert_eq!(m("%o"), "/etc/logalarm/app.conf.ini");
        assert_eq!(magic("%o|%s", Path::new("rel/x.ini")), "rel/x.ini|x.ini");
        assert_eq!(m("%k"), crate::par::cores().to_string());
        assert_eq!(m("%V"), env!("CARGO_PKG_VERSION"));
        assert!(m("%t").parse::<u64>().is_ok_and(|t| t > 1_700_000_000));
        assert_eq!(m("%j").len(), 8);
        // uWSGI 2.0.21 prints AF909DCB for /tmp/fz/p.ini.
        assert_eq!(magic("%j", Path::new("/tmp/fz/p.ini")), "AF909DCB");
    }
}
