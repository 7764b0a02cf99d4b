//! What a rule costs: whether its lazy DFA thrashes, and how fast it matches text made of its
//! own bytes.
//!
//! Role: a rule like `(a|b)*a(a|b){20}c` needs millions of DFA states on text of `a` and `b`:
//! the lazy DFA's cache fills, is cleared, fills again, and regex-automata gives up on it and
//! falls back to a far slower engine (a few MB/s instead of a GB/s). [`probe`] builds the
//! rule's lazy DFA alone with a small cache and runs it over [`adversarial`] text (random lines
//! of the bytes the rule itself mentions, deterministic); regex-automata reports the give-up,
//! and the rule's real matcher is timed on the same text. At start-up only [`suspicious`] rules
//! are probed (a counted repetition of a non-literal, or a repetition inside one), so start-up
//! stays fast; `--check-rules` probes every rule.
//! Invariant: the thrash verdict depends on the rule and the text only (not on time); the
//! timing runs at most [`BUDGET`].

use regex_automata::hybrid::dfa::DFA;
use regex_automata::meta;
use regex_automata::nfa::thompson;
use regex_automata::Input;
use regex_syntax::hir::{Class, Hir, HirKind};
use std::time::{Duration, Instant};

/// The probe's cache: small, so that a rule needing many states shows it on a small text.
const PROBE_CACHE: usize = 64 << 10;
/// Probe text size (with the cache above: regex-automata gives up on a rule that keeps building
/// a state for fewer than ten bytes searched; 64 KiB of each keeps start-up near a millisecond
/// a suspicious rule).
const SAMPLE: usize = 64 << 10;
/// Longest a probe's timing runs.
const BUDGET: Duration = Duration::from_millis(60);

/// What [`probe`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cost {
    /// The lazy DFA gave up (its cache was cleared again and again).
    pub thrashes: bool,
    /// Megabytes a second of the rule's own matcher over the probe text.
    pub mb_per_s: f64,
}

/// Whether `h` may need many DFA states: a counted repetition (`{n}`, `{n,m}` with n or m of 8
/// or more) of something that is not a plain literal, or a repetition inside such — unless the
/// repetition can only be entered at one offset of a line (see [`risky`]).
pub(crate) fn suspicious(h: &Hir) -> bool {
    risky(h, false)
}

/// [`suspicious`] for `h` where `anchored` says that `h` is entered at one offset of a line
/// only: after a start-of-line anchor and items of fixed width. There a counted repetition of
/// a fixed-width item advances in step with the text (one DFA thread, at most as many states
/// as the count), whatever the count: `^(\w{3} [ :0-9]{11}|[0-9T:.+-]{32}) ` starts most of
/// logcheck's 1,907 rules, which would otherwise each be probed at start-up (about a
/// millisecond each). Blow-ups need threads entering the repetition at many offsets: an
/// unanchored rule, or a loop before the repetition.
fn risky(h: &Hir, anchored: bool) -> bool {
    match h.kind() {
        HirKind::Repetition(r) => {
            let counted = r.max.unwrap_or(r.min).max(r.min) >= 8;
            let literal = matches!(r.sub.kind(), HirKind::Literal(_));
            let lockstep = anchored && fixed_width(&r.sub);
            (counted && !literal && !lockstep) || risky(&r.sub, lockstep)
        }
        HirKind::Capture(c) => risky(&c.sub, anchored),
        HirKind::Alternation(v) => v.iter().any(|s| risky(s, anchored)),
        HirKind::Concat(v) => {
            let mut anchored = anchored;
            for s in v {
                anchored |= line_start(s);
                if risky(s, anchored) {
                    return true;
                }
                anchored &= fixed_width(s);
            }
            false
        }
        _ => false,
    }
}

fn fixed_width(h: &Hir) -> bool {
    let p = h.properties();
    p.minimum_len().is_some() && p.maximum_len() == p.minimum_len()
}

fn line_start(h: &Hir) -> bool {
    use regex_syntax::hir::Look;
    matches!(
        h.kind(),
        HirKind::Look(Look::Start | Look::StartLF | Look::StartCRLF)
    )
}

/// The bytes `h` mentions: its literals' bytes and a few of each class (its ends and middle).
fn alphabet(h: &Hir, out: &mut Vec<u8>) {
    match h.kind() {
        HirKind::Literal(l) => out.extend_from_slice(&l.0),
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.ranges().iter().take(16) {
                let (a, b) = (r.start(), r.end());
                out.extend([a, b, a + (b - a) / 2]);
            }
        }
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.ranges().iter().take(16) {
                for ch in [r.start(), r.end()] {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        HirKind::Repetition(r) => alphabet(&r.sub, out),
        HirKind::Capture(c) => alphabet(&c.sub, out),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|s| alphabet(s, out)),
        HirKind::Empty | HirKind::Look(_) => {}
    }
}

/// The bytes of what `h` repeats (where a DFA's states multiply).
fn repeated(h: &Hir, out: &mut Vec<u8>) {
    match h.kind() {
        HirKind::Repetition(r) => alphabet(&r.sub, out),
        HirKind::Capture(c) => repeated(&c.sub, out),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().for_each(|s| repeated(s, out)),
        _ => {}
    }
}

fn clean(mut v: Vec<u8>) -> Vec<u8> {
    v.retain(|&b| b != b'\n');
    v.sort_unstable();
    v.dedup();
    v
}

/// [`SAMPLE`] bytes of lines (about 200 bytes each) of random bytes, nineteen in twenty from
/// what `h` repeats and the rest from all the bytes it mentions: long runs that keep a DFA
/// in the states where they multiply. The same text for the same rule.
pub(crate) fn adversarial(h: &Hir) -> Vec<u8> {
    let mut all = Vec::new();
    alphabet(h, &mut all);
    let mut all = clean(all);
    if all.is_empty() {
        all.push(b'x');
    }
    let mut rep = Vec::new();
    repeated(h, &mut rep);
    let mut rep = clean(rep);
    if rep.is_empty() {
        rep = all.clone();
    }
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(SAMPLE);
    while out.len() < SAMPLE {
        for _ in 0..200 {
            let from = if next().is_multiple_of(20) {
                &all
            } else {
                &rep
            };
            out.push(from[(next() % from.len() as u64) as usize]);
        }
        out.push(b'\n');
    }
    out
}

/// Probe rule `h` (as compiled for matching, `regex` its own matcher). Its speed is timed when
/// it thrashes, or always when `timed` (`--check-rules`); otherwise `mb_per_s` is 0: start-up
/// pays only for the thrash verdict (about a millisecond a suspicious rule).
pub(crate) fn probe(h: &Hir, regex: &meta::Regex, timed: bool) -> Cost {
    let text = adversarial(h);
    let thrashes = thrashes(h, &text);
    Cost {
        thrashes,
        mb_per_s: if thrashes || timed {
            speed(regex, &text)
        } else {
            0.0
        },
    }
}

/// Whether the lazy DFA of `h` gives up on `text` (regex-automata's own verdict: the cache was
/// cleared at least 3 times while fewer than 10 bytes were searched per state built).
fn thrashes(h: &Hir, text: &[u8]) -> bool {
    let nfa = match thompson::Compiler::new()
        .configure(thompson::Config::new().utf8(false))
        .build_from_hir(h)
    {
        Ok(n) => n,
        Err(_) => return false,
    };
    let dfa = match DFA::builder()
        .configure(
            DFA::config()
                .cache_capacity(PROBE_CACHE)
                .skip_cache_capacity_check(true)
                .minimum_cache_clear_count(Some(3))
                .minimum_bytes_per_state(Some(10)),
        )
        .build_from_nfa(nfa)
    {
        Ok(d) => d,
        Err(_) => return false,
    };
    // Bounded by the text (1 MiB through a lazy DFA), not by time: a verdict must not depend
    // on how busy the machine is.
    let mut cache = dfa.create_cache();
    text.split(|&b| b == b'\n').any(|line| {
        matches!(dfa.try_search_fwd(&mut cache, &Input::new(line)),
                 Err(e) if e.to_string().contains("gave up"))
    })
}

/// MB/s of `regex` on `text`, line by line, within [`BUDGET`].
fn speed(regex: &meta::Regex, text: &[u8]) -> f64 {
    let mut cache = regex.create_cache();
    let start = Instant::now();
    let mut done = 0usize;
    for line in text.split(|&b| b == b'\n') {
        let _ = regex.search_with(&mut cache, &Input::new(line));
        done += line.len() + 1;
        if start.elapsed() > BUDGET {
            break;
        }
    }
    done as f64 / start.elapsed().as_secs_f64().max(1e-9) / 1e6
}

/// A deterministic pseudo-random sequence (xorshift64) from `seed` (not zero): probe text
/// here, random cases in tests.
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(pattern: &str) -> (bool, Cost) {
        let h = crate::rules::parse_regex(pattern).unwrap();
        let r = meta::Builder::new()
            .configure(meta::Config::new().utf8_empty(false))
            .build_from_hir(&h)
            .unwrap();
        (suspicious(&h), probe(&h, &r, true))
    }

    #[test]
    fn the_exponential_rule_thrashes_and_plain_rules_do_not() {
        let (s, c) = cost("(a|b)*a(a|b){20}c");
        assert!(s && c.thrashes, "{c:?}");
        for p in [
            "ERROR",
            r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
            "[A-Z]{8,}",
            r"^\S+ \S+ \[[^]]+\] .{10,20} ERROR",
        ] {
            let (_, c) = cost(p);
            assert!(!c.thrashes, "{p}: {c:?}");
        }
        assert!(!suspicious(&crate::rules::parse_regex("x{20}").unwrap()));
    }

    #[test]
    fn a_counted_repetition_entered_at_one_offset_of_the_line_is_not_probed() {
        // Not suspicious, and the probe agrees: no thrash.
        for p in [
            r"^(\w{3} [ :0-9]{11}|[0-9T:.+-]{32}) [._[:alnum:]-]+ kernel: ",
            "^[ab]{30}c",
            "^x(?:[ab]{4}){12}",
            r"(?m)^\d{4}-[0-9a-f]{32} ",
        ] {
            let (s, c) = cost(p);
            assert!(!s && !c.thrashes, "{p}: {s} {c:?}");
        }
        // A loop before it, or no anchor: still probed (and the first thrashes).
        for p in [
            "^(a|b)*a(a|b){20}c",
            "^a+[ab]{30}c",
            "[ab]{30}c",
            "^x|[ab]{30}c",
        ] {
            let (s, _) = cost(p);
            assert!(s, "{p}");
        }
        assert!(cost("^(a|b)*a(a|b){20}c").1.thrashes);
    }
}
