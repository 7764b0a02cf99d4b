//! Rule syntax: a uWSGI rule parsed into a byte-based HIR, and the rewrite that keeps the
//! one-pass automaton inside lines.
//!
//! Role: [`parse_regex`] parses with uWSGI's non-UTF PCRE semantics where the Rust syntax
//! allows (bytes, ASCII classes and case folding) and refuses what it cannot run with an error
//! that names the offset and, where known, how to rewrite; [`for_scan`] rewrites a rule for the
//! whole-buffer automaton (`\n` out of every class, `^`/`$` at line ends); [`looks_ahead`] says
//! whether a rule could match at the end of a cut line only because it was cut.
//! Invariant: the rewrite only ever narrows matches to what the rule matches within one line.

#[allow(unused_imports)]
use super::*;

/// Parse one rule's regex the way uWSGI's PCRE reads it (byte-based, case-sensitive, `.` not
/// matching newline) into a syntax tree. Most patterns take the fast path of `rules::quick`,
/// which makes the same tree; the rest, and every error, are regex-syntax's.
pub fn parse_regex(pattern: &str) -> Result<Hir, RegexError> {
    if let Some(h) = super::quick::parse(pattern) {
        return Ok(h);
    }
    let mut parser = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build();
    parser.parse(pattern).map_err(|e| {
        let (kind, offset) = match &e {
            regex_syntax::Error::Parse(p) => (p.kind().to_string(), p.span().start.offset),
            regex_syntax::Error::Translate(t) => (t.kind().to_string(), t.span().start.offset),
            other => (other.to_string(), 0),
        };
        let hint = if kind.contains("look-around") || kind.contains("backreference") {
            " (logalarm matches all rules in one automaton, which cannot do look-around or backreferences: rewrite the rule, or split it into a log-alarm and a not-log-alarm)"
        } else {
            ""
        };
        RegexError(format!("regex error at offset {offset}: {kind}{hint}"))
    })
}

/// The pattern of a rule that ignores ASCII case throughout, with that flag taken out: `rest`
/// for `(?i)rest`, `(?s)rest` for `(?is)rest`. None unless the pattern starts with a flag
/// directive that sets `i` (and only `i`, `m`, `s`, `x`, `R`, `U`: `u` would fold beyond ASCII)
/// and sets no flag anywhere else (`(?-i)`, `(?i:…)` inside; a `(?` that may be escaped counts
/// too). See `literals::needles_ignoring_case` for why literals of the result serve.
pub(super) fn case_kept(pattern: &str) -> Option<String> {
    let b = pattern.as_bytes();
    let flags = b.strip_prefix(b"(?")?;
    let n = flags.iter().position(|&c| c == b')')?;
    let flags = &flags[..n];
    if !flags.contains(&b'i') || !flags.iter().all(|c| b"imsxRU".contains(c)) {
        return None;
    }
    let rest = &pattern[n + 3..];
    let sets_flags = rest.as_bytes().windows(3).any(|w| {
        w[0] == b'('
            && w[1] == b'?'
            && (w[2] == b'-' || (w[2].is_ascii_alphabetic() && w[2] != b'P'))
    });
    if sets_flags {
        return None;
    }
    let others: String = flags
        .iter()
        .filter(|&&c| c != b'i')
        .map(|&c| char::from(c))
        .collect();
    Some(if others.is_empty() {
        rest.to_string()
    } else {
        format!("(?{others}){rest}")
    })
}

/// Can a rule (its pattern for the automaton) never match a line because every match of it
/// holds a newline? Lines are matched one at a time without their terminator, so such a rule
/// is dead (uWSGI matched each `read()` chunk, which may hold several lines: fail2ban's
/// multi-line filters, for one). PERF: only patterns that spell a newline some way are parsed
/// again (a start with two thousand rules pays nothing for the others; the spellings are looked
/// for after each backslash, without a lowered copy of the pattern).
pub(crate) fn needs_a_newline(pattern: &str) -> bool {
    let b = pattern.as_bytes();
    let spelled = memchr::memchr_iter(b'\\', b).any(|at| spells_a_newline(&b[at + 1..]));
    spelled && parse_regex(pattern).is_ok_and(|h| never_matches(&for_scan(h)))
}

/// Whether the text after a backslash starts with an escape that is a newline (`\n`,
/// `\x0a`, `\012`, `\cj`, or one of the forms whose value needs reading: `\x{`, `\o{`,
/// `\u`), in either case.
fn spells_a_newline(after: &[u8]) -> bool {
    let at = |i: usize| after.get(i).map_or(0, u8::to_ascii_lowercase);
    match at(0) {
        b'n' | b'u' => true,
        b'x' => at(1) == b'{' || (at(1) == b'0' && at(2) == b'a'),
        b'c' => at(1) == b'j',
        b'0' => at(1) == b'1' && at(2) == b'2',
        b'o' => at(1) == b'{',
        _ => false,
    }
}

/// Does this tree match nothing at all (an empty class where every way through must pass)?
/// (Not `minimum_len().is_none()`: one dead branch makes an alternation's minimum unknown.)
fn never_matches(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Empty | HirKind::Literal(_) | HirKind::Look(_) => false,
        HirKind::Class(Class::Bytes(c)) => c.ranges().is_empty(),
        HirKind::Class(Class::Unicode(c)) => c.ranges().is_empty(),
        HirKind::Repetition(r) => r.min > 0 && never_matches(&r.sub),
        HirKind::Capture(c) => never_matches(&c.sub),
        HirKind::Concat(v) => v.iter().any(never_matches),
        HirKind::Alternation(v) => v.iter().all(never_matches),
    }
}

/// Rewrite a rule so that it cannot match across `\n` and its anchors work at line boundaries
/// inside a buffer of many lines. Matches of the original on a line are matches of the result
/// at the same place in the buffer (the result may match a little more: candidates only).
pub(super) fn for_scan(h: Hir) -> Hir {
    match h.into_kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(hir::Literal(bytes)) => {
            if memchr::memchr(b'\n', &bytes).is_some() {
                Hir::fail()
            } else {
                Hir::literal(bytes)
            }
        }
        HirKind::Class(Class::Bytes(mut c)) => {
            c.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'\n', b'\n',
            )]));
            Hir::class(Class::Bytes(c))
        }
        HirKind::Class(Class::Unicode(mut c)) => {
            c.difference(&hir::ClassUnicode::new([hir::ClassUnicodeRange::new(
                '\n', '\n',
            )]));
            Hir::class(Class::Unicode(c))
        }
        HirKind::Look(look) => Hir::look(match look {
            Look::Start | Look::StartLF | Look::StartCRLF => Look::StartCRLF,
            Look::End | Look::EndLF | Look::EndCRLF => Look::EndCRLF,
            other => other,
        }),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(for_scan(*r.sub)),
        }),
        HirKind::Capture(c) => for_scan(*c.sub),
        HirKind::Concat(v) => Hir::concat(v.into_iter().map(for_scan).collect()),
        HirKind::Alternation(v) => Hir::alternation(v.into_iter().map(for_scan).collect()),
    }
}

/// Whether `h` matches the empty string at every position (no assertion on the way).
fn empty_anywhere(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Empty => true,
        HirKind::Repetition(r) => r.min == 0,
        HirKind::Capture(c) => empty_anywhere(&c.sub),
        HirKind::Concat(v) => v.iter().all(empty_anywhere),
        HirKind::Alternation(v) => v.iter().any(empty_anywhere),
        HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => false,
    }
}

/// A rule for "does it match this line anywhere" only: the parts at its ends that match the
/// empty string anywhere taken off (fail2ban's `(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?…`
/// prefix before a message), a repetition at an end cut to its least (`\s+error` as
/// `\s error`), and captures. The same lines match: a match of `N S M` holds a match of `S`,
/// and a match of `S` is one of `N S M` with `N` and `M` empty; a match of `X{m,n} S` ends
/// with one of `X{m} S`. Never for where a match is or what it captures.
/// PERF: an unanchored lazy DFA tracks every place such a prefix could have started; without
/// it, the automaton of `S` alone.
pub(super) fn for_existence(h: &Hir) -> Hir {
    trim(h, true, true)
}

/// `h` without the parts that match the empty string anywhere at its start (`lead`) and end
/// (`tail`); `h` sits at the rule's start (end) wherever `lead` (`tail`) is set, and at least
/// one of them is.
fn trim(h: &Hir, lead: bool, tail: bool) -> Hir {
    match h.kind() {
        HirKind::Capture(c) => trim(&c.sub, lead, tail),
        HirKind::Concat(parts) => {
            let (mut a, mut b) = (0, parts.len());
            while lead && a < b && empty_anywhere(&parts[a]) {
                a += 1;
            }
            while tail && b > a && empty_anywhere(&parts[b - 1]) {
                b -= 1;
            }
            match &parts[a..b] {
                [] => Hir::empty(),
                [one] => trim(one, lead, tail),
                [first, middle @ .., last] => {
                    let mut kept = Vec::with_capacity(b - a);
                    kept.push(if lead {
                        trim(first, true, false)
                    } else {
                        first.clone()
                    });
                    kept.extend(middle.iter().cloned());
                    kept.push(if tail {
                        trim(last, false, true)
                    } else {
                        last.clone()
                    });
                    Hir::concat(kept)
                }
            }
        }
        // At an end, `X{m,n}` holds `X{m}` wherever it matches (its last, or first, m
        // copies), and one copy sits at that end itself.
        HirKind::Repetition(r) if r.min == 1 => trim(&r.sub, lead, tail),
        HirKind::Repetition(r) if r.max != Some(r.min) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: Some(r.min),
            greedy: r.greedy,
            sub: r.sub.clone(),
        }),
        // A branch that matches the empty string anywhere matches every line.
        HirKind::Alternation(v) if v.iter().any(empty_anywhere) => Hir::empty(),
        HirKind::Alternation(v) => {
            Hir::alternation(v.iter().map(|b| trim(b, lead, tail)).collect())
        }
        _ => h.clone(),
    }
}

/// Does this tree contain an assertion about what follows a position (end anchors, word
/// boundaries)? Such a rule can match a cut line at the cut only.
pub(super) fn looks_ahead(h: &Hir) -> bool {
    let ls = h.properties().look_set();
    ls.contains(Look::End)
        || ls.contains(Look::EndLF)
        || ls.contains(Look::EndCRLF)
        || ls.contains_word()
}
