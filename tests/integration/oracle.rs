//! The naive oracle shared by the property tests, the scenario runner and the fuzz replays:
//! split lines one by one, run every rule in order with its own `regex::bytes::Regex`, union
//! the positive rules' alarms, subtract the negative rules' alarms (README, `not-log-alarm`).

use regex::bytes::{Regex, RegexBuilder};

pub(crate) struct OracleRule {
    pub(crate) re: Regex,
    pub(crate) alarms: Vec<u32>,
    pub(crate) negate: bool,
}

pub(crate) fn compile(pattern: &str, alarms: Vec<u32>, negate: bool) -> Option<OracleRule> {
    let re = RegexBuilder::new(pattern).unicode(false).build().ok()?;
    Some(OracleRule { re, alarms, negate })
}

/// Alarms raised per line: `(message, alarm ranks sorted)`.
pub(crate) fn run(rules: &[OracleRule], input: &[u8], bufsize: usize) -> Vec<(Vec<u8>, Vec<u32>)> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if line.starts_with(b"[uwsgi-alarm") {
            continue;
        }
        let msg = &line[..line.len().min(bufsize)];
        let text: &[u8] = if msg.len() < line.len() {
            msg
        } else if let Some(t) = msg.strip_suffix(b"\r\n") {
            t
        } else if let Some(t) = msg.strip_suffix(b"\n") {
            t
        } else {
            msg
        };
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        for r in rules {
            if r.re.is_match(text) {
                if r.negate {
                    neg.extend(&r.alarms);
                } else {
                    pos.extend(&r.alarms);
                }
            }
        }
        pos.sort_unstable();
        pos.dedup();
        pos.retain(|a| !neg.contains(a));
        if !pos.is_empty() {
            out.push((msg.to_vec(), pos));
        }
    }
    out
}
