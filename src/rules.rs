//! Log-alarm rules compiled for one pass per buffer: literal-first, automata for the rest.
//!
//! Role: given a buffer of whole lines, find every line that some `log-alarm`/`not-log-alarm`
//! rule matches and report, for each, the alarms it raises (positive names minus negative names,
//! each once, in the order the configuration first names them).
//!
//! Shape (Hyperscan's literal-first design, ripgrep's whole-buffer fast path):
//! * Most rules have *required literals* ([`rule_needles`]: strings one of which every match
//!   contains, case-folded for `(?i)` rules). One [`LitScan`] searches the *whole buffer* for all
//!   of them at once; a line holding one is a candidate, and only the rules whose literals it
//!   holds are confirmed, by the small automaton of their [`Group`] (rules sharing a literal
//!   share one; most hold one rule), compiled at its first candidate. Most lines, which hold no
//!   literal, cost a fraction of a nanosecond per byte.
//! * The rules without literals of [`FAST_NEEDLE_LEN`] bytes form the *DFA part*: `scan`, one
//!   regex-automata lazy DFA of all of them, rewritten so that no match can cross a line (`\n`
//!   removed from every class and literal, `^`/`\A` become "after `\n`, or `\r` not before
//!   `\n`", `$`/`\z` become "before `\r` or `\n`"), searches the whole buffer for candidates
//!   (or Teddy over their literals, when they all have some); `exact` (MatchKind::All) gives
//!   the set of them that a candidate line matches.
//! * Both candidate streams are merged in line order; each line is confirmed cut to
//!   `log-master-bufsize` and without its terminator: the exact semantics.
//!
//! Invariants: no loop over all rules per line (a line meets only the rules its literals name,
//! and the DFA part's set comes from one automaton run); no allocation per line (caches and
//! scratch live in [`Matcher`]); regexes are byte-based like uWSGI's non-UTF PCRE
//! (`unicode(false)`, `utf8(false)`: `.` is any byte but `\n`, `\w` and `(?i)` are ASCII), so any
//! input bytes can be matched.
//!
//! Rejected alternatives (PERF.md has the figures): one automaton of all rules for every rule
//! set (100 rules: 405 MB/s in memory, 1,000 rules: 20 MB/s); aho-corasick over all literals
//! (slower than the lazy DFA at 100 rules); a dense DFA (does not finish building for 100
//! realistic rules: 600 s and 2.4 GB RSS without finishing); a PCRE2 fallback for look-around — such rules are refused
//! at start-up with a clear error instead.

use crate::litscan::{LitScan, Needle};
use regex_automata::meta::{self, Regex};
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Input, MatchKind, PatternSet, Span};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};
use std::sync::OnceLock;

/// Lines beginning with this are logalarm's (and uWSGI's) own diagnostics: never matched.
pub(crate) const SELF_PREFIX: &[u8] = b"[uwsgi-alarm";

/// One compiled rule, as the matcher needs it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Alarm ranks this rule names (see [`RuleSet::new`]).
    pub alarms: Vec<u32>,
    pub negate: bool,
}

/// Why a rule's regex was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RegexError(pub String);

/// A rule set that cannot be compiled: which rule (when one can be named) and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{error}")]
pub struct RuleError {
    /// The index of the rule, or `None` when the rules without literals, compiled together,
    /// are too large as a whole.
    pub rule: Option<usize>,
    pub error: RegexError,
}

impl RuleError {
    fn of(rule: usize) -> impl Fn(RegexError) -> RuleError {
        move |error| RuleError {
            rule: Some(rule),
            error,
        }
    }
}

/// All rules, compiled.
#[derive(Debug)]
pub struct RuleSet {
    /// The literals of the rules that have some (see [`rule_needles`]): their hits name the
    /// rules to confirm.
    lits: Option<LitScan>,
    /// Groups of the rules the literal search finds, and each rule's group (`NO_GROUP` for the
    /// rules the DFA part takes).
    groups: Vec<Group>,
    group_of: Vec<u32>,
    /// Per rule, what a line the literal search names it for must also pass (empty for the
    /// DFA part's rules).
    checks: Vec<Check>,
    /// The rules without usable literals.
    dfa: Option<DfaPart>,
    rules: Vec<Rule>,
    n_alarms: usize,
    bufsize: usize,
    /// Some DFA-part rule can match at the end of a cut line only because it was cut (`$`,
    /// `\b`...): then lines longer than `bufsize` are confirmed one by one.
    end_sensitive: bool,
}

/// Rules the literal search finds, confirmed together: rules that share a literal are named by
/// the same lines, so one automaton run (`MatchKind::All`) confirms them all. Most groups hold
/// one rule. Compiled at the group's first candidate line.
#[derive(Debug)]
struct Group {
    /// Rule index of each of the automaton's patterns.
    rules: Vec<u32>,
    hirs: Vec<Hir>,
    re: OnceLock<Result<Regex, RegexError>>,
}

const NO_GROUP: u32 = u32::MAX;

/// What a line named by a rule's literals must pass before the rule's automaton runs.
#[derive(Debug, Default)]
struct Check {
    /// The rule matches exactly the lines holding one of its literals (a plain string, an
    /// alternation of them, or one string under `(?i)`): being named is matching.
    plain: bool,
    /// Literals of the rule's other parts: a match holds one literal of each gate. Made at the
    /// rule's first candidate line, like its group's automaton.
    // PERF: made at start-up, they cost 7-11 ms of the 1,000-rule set's start-up.
    gates: OnceLock<Vec<Gate>>,
}

/// One of these literals is in every match of a rule.
#[derive(Debug)]
struct Gate(Vec<GateLit>);

#[derive(Debug)]
enum GateLit {
    Exact(Box<memchr::memmem::Finder<'static>>),
    /// Lower case, compared ignoring ASCII case.
    Folded(Box<[u8]>),
}

/// Most gates a rule gets (the best ones: each costs a search of the line).
const MAX_GATES: usize = 3;

impl Gate {
    #[inline]
    fn holds(&self, text: &[u8]) -> bool {
        self.0.iter().any(|l| match l {
            GateLit::Exact(f) => f.find(text).is_some(),
            GateLit::Folded(lower) => contains_folded(text, lower),
        })
    }
}

/// Whether `hay` holds `lower` (lower case) ignoring ASCII case.
fn contains_folded(hay: &[u8], lower: &[u8]) -> bool {
    let Some((&first, rest)) = lower.split_first() else {
        return true;
    };
    let mut i = 0;
    while let Some(j) = hay
        .get(i..)
        .and_then(|h| memchr::memchr2(first, first.to_ascii_uppercase(), h))
    {
        let p = i + j + 1;
        if hay
            .get(p..p + rest.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(rest))
        {
            return true;
        }
        i = p;
    }
    false
}

/// A set of literals (each compared exactly, or ignoring ASCII case when its flag is set) one
/// of which every match holds.
type LitSet = Vec<(Vec<u8>, bool)>;

/// Most literals in one gate.
const MAX_GATE_LITS: usize = 8;

/// Literal sets every match of `h` holds one of: one per part of a concatenation (runs of
/// single-byte parts form one part: `(?i:error)` is five classes, `9 time\(s\)` a literal), and
/// for an alternation, unions of one set of each branch.
fn required_sets(h: &Hir) -> Vec<LitSet> {
    let one = |h: &Hir| -> Vec<LitSet> {
        // PERF: a plain literal part needs no extractor (1,000 rules: start-up 52 -> ? ms).
        if let HirKind::Literal(hir::Literal(b)) = h.kind() {
            return if b.len() >= MIN_NEEDLE_LEN && memchr::memchr(b'\n', b).is_none() {
                vec![vec![(b.to_vec(), false)]]
            } else {
                Vec::new()
            };
        }
        rule_needles(h)
            .map(|(lits, ci)| vec![lits.into_iter().map(|l| (l, ci)).collect()])
            .unwrap_or_default()
    };
    match h.kind() {
        HirKind::Concat(parts) => {
            let mut sets = Vec::new();
            let mut run: Vec<Hir> = Vec::new();
            for p in parts {
                if matches!(p.kind(), HirKind::Literal(_) | HirKind::Class(_)) {
                    run.push(p.clone());
                    continue;
                }
                match run.len() {
                    0 => {}
                    1 => sets.extend(one(&run[0])),
                    _ => sets.extend(one(&Hir::concat(std::mem::take(&mut run)))),
                }
                run.clear();
                sets.extend(required_sets(p));
            }
            match run.len() {
                0 => {}
                1 => sets.extend(one(&run[0])),
                _ => sets.extend(one(&Hir::concat(run))),
            }
            sets
        }
        HirKind::Alternation(branches) => {
            let per: Vec<Vec<LitSet>> = branches.iter().map(required_sets).collect();
            let most = per.iter().map(Vec::len).max().unwrap_or(0);
            if per.iter().any(Vec::is_empty) {
                return Vec::new();
            }
            (0..most)
                .map(|j| {
                    per.iter()
                        .flat_map(|sets| sets[j.min(sets.len() - 1)].iter().cloned())
                        .collect()
                })
                .collect()
        }
        HirKind::Capture(c) => required_sets(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_sets(&r.sub),
        HirKind::Literal(_) | HirKind::Class(_) => one(h),
        _ => Vec::new(),
    }
}

/// The gates of a rule whose literal search looks for `chosen`: its other required literal sets
/// (`PacketResponder \d+ for block blk_-?\d+ Interrupted`, found by "PacketResponder ", must also
/// hold " for block blk_" and " Interrupted"), best first.
fn gates_of(h: &Hir, chosen: &[Vec<u8>]) -> Vec<Gate> {
    let inside_chosen = |l: &[u8]| {
        chosen
            .iter()
            .any(|c| contains_folded(c, &l.to_ascii_lowercase()))
    };
    let mut found: Vec<LitSet> = required_sets(h)
        .into_iter()
        .filter(|set| set.len() <= MAX_GATE_LITS)
        // A gate all of whose literals the chosen literal may hold tells nothing.
        .filter(|set| !set.iter().all(|(l, _)| inside_chosen(l)))
        .collect();
    let lens = |set: &LitSet| quality(&set.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());
    found.sort_by_cached_key(|set| std::cmp::Reverse(lens(set)));
    found.dedup();
    found.truncate(MAX_GATES);
    found
        .into_iter()
        .map(|set| {
            Gate(
                set.into_iter()
                    .map(|(l, ci)| {
                        if ci {
                            GateLit::Folded(l.into())
                        } else {
                            GateLit::Exact(Box::new(memchr::memmem::Finder::new(&l).into_owned()))
                        }
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Whether `h` matches exactly the lines that hold one of `needles` (compared ignoring ASCII
/// case when `ci`): then a literal hit is a match.
fn is_plain(h: &Hir, needles: &[Vec<u8>], ci: bool) -> bool {
    fn literals<'h>(h: &'h Hir, out: &mut Vec<&'h [u8]>) -> bool {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => {
                out.push(b);
                true
            }
            HirKind::Capture(c) => literals(&c.sub, out),
            HirKind::Alternation(v) => v.iter().all(|c| literals(c, out)),
            _ => false,
        }
    }
    /// The lower-case string `h` matches ignoring ASCII case, and nothing else.
    fn folded(h: &Hir, out: &mut Vec<u8>) -> bool {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => {
                out.extend_from_slice(b);
                !b.iter().any(u8::is_ascii_alphabetic)
            }
            HirKind::Class(Class::Bytes(c)) => match c.ranges() {
                [one] if one.start() == one.end() && !one.start().is_ascii_alphabetic() => {
                    out.push(one.start());
                    true
                }
                [up, low]
                    if up.start() == up.end()
                        && low.start() == low.end()
                        && up.start().is_ascii_uppercase()
                        && low.start() == up.start().to_ascii_lowercase() =>
                {
                    out.push(low.start());
                    true
                }
                _ => false,
            },
            HirKind::Capture(c) => folded(&c.sub, out),
            HirKind::Concat(v) => v.iter().all(|c| folded(c, out)),
            _ => false,
        }
    }
    if ci {
        let mut f = Vec::new();
        matches!(needles, [one] if folded(h, &mut f) && f == *one)
    } else {
        let mut lits = Vec::new();
        literals(h, &mut lits) && needles.iter().all(|n| lits.contains(&&n[..]))
    }
}

/// Most rules in one [`Group`].
const MAX_GROUP: usize = 16;

/// Above this [`nfa_weight`], a rule is compiled alone at start-up (to report a size error).
const EAGER_WEIGHT: usize = 2_000;

/// A rough size of a rule's automaton (bytes of literals, ranges of classes, repetitions
/// multiplied out): small rules cannot exceed any compile limit.
fn nfa_weight(h: &Hir) -> usize {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(hir::Literal(b)) => b.len(),
        HirKind::Class(Class::Bytes(c)) => c.ranges().len(),
        HirKind::Class(Class::Unicode(c)) => c.ranges().len() * 4,
        HirKind::Repetition(r) => {
            let n = r.max.unwrap_or(r.min).max(r.min).max(1) as usize;
            nfa_weight(&r.sub).saturating_mul(n)
        }
        HirKind::Capture(c) => nfa_weight(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().map(nfa_weight).fold(0, usize::saturating_add)
        }
    }
}

/// The regex settings of every automaton here: byte-based (empty matches may split a UTF-8
/// sequence), a generous NFA limit, no dense DFA (it does not finish building for 100 rules).
fn base_config() -> meta::Config {
    meta::Config::new()
        .utf8_empty(false)
        .nfa_size_limit(Some(256 << 20))
        .dfa(false)
}

/// A group's automaton (all its rules' matches, the default lazy DFA cache, no prefilter: the
/// literal search already found a literal of theirs in the line).
fn group_regex(hirs: &[Hir]) -> Result<Regex, RegexError> {
    meta::Builder::new()
        .configure(
            base_config()
                .match_kind(MatchKind::All)
                .auto_prefilter(false),
        )
        .build_many_from_hir(hirs)
        .map_err(|e| RegexError(format!("cannot compile the rule: {e}")))
}

/// Rules matched by automata instead of literals: a scan automaton over the whole buffer, and
/// an exact one giving the set of rules on a candidate line.
#[derive(Debug)]
struct DfaPart {
    /// The literals of all these rules, when they all have case-sensitive ones: used instead
    /// of `scan` to find candidate lines.
    pre: Option<Prefilter>,
    scan: Regex,
    exact: Regex,
    /// Rule index of each of the automata's patterns.
    ids: Vec<u32>,
}

/// Parse one rule's regex the way uWSGI's PCRE reads it (byte-based, case-sensitive, `.` not
/// matching newline) into a syntax tree.
pub fn parse_regex(pattern: &str) -> Result<Hir, RegexError> {
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

/// Rewrite a rule so that it cannot match across `\n` and its anchors work at line boundaries
/// inside a buffer of many lines. Matches of the original on a line are matches of the result
/// at the same place in the buffer (the result may match a little more: candidates only).
fn for_scan(h: Hir) -> Hir {
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

/// Does this tree contain an assertion about what follows a position (end anchors, word
/// boundaries)? Such a rule can match a cut line at the cut only.
fn looks_ahead(h: &Hir) -> bool {
    let ls = h.properties().look_set();
    ls.contains(Look::End)
        || ls.contains(Look::EndLF)
        || ls.contains(Look::EndCRLF)
        || ls.contains_word()
}

/// Most literals handed to the prefilter.
const MAX_NEEDLES: usize = 50_000;
/// Most literals one rule may contribute (a `(?i)` word has 2^n case variants: beyond this, the
/// extractor settles for shorter prefixes), and the shortest useful literal.
const MAX_RULE_NEEDLES: usize = 16;
const MIN_NEEDLE_LEN: usize = 3;
/// The shortest literal the literal-first search takes: 4-byte windows at 4 offsets (its
/// fastest stride); a few 6-byte ones are taken too (a window starting a byte before them:
/// `litscan::MAX_OVERHANG_KEYS`). Rules with shorter literals go to the DFA part, whose regex
/// then searches for them with its own literal prefilter.
// PERF: rules100 has one 6-byte rule (`\[(crit|alert|emerg)\]`); with it in the search at
// stride 2 the search was scalar (1.5 GB/s alone); in the DFA part it cost a Teddy pass of its
// own (4-5 % of the pipe path's CPU); with an overhang window neither (see PERF.md).
const FAST_NEEDLE_LEN: usize = 7;

/// Literals every match of `h` must begin with, if they form a small finite set.
fn prefix_literals(h: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut ex = Extractor::new();
    ex.kind(ExtractKind::Prefix)
        .limit_literal_len(32)
        .limit_total(MAX_RULE_NEEDLES);
    let seq = ex.extract(h);
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_RULE_NEEDLES {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// The shortest literal's length.
fn min_len(lits: &[Vec<u8>]) -> usize {
    lits.iter().map(Vec::len).min().unwrap_or(0)
}

/// How good a literal set is as a prefilter: a longer shortest literal (up to 32 bytes), less
/// a byte for each doubling of the number of literals (`PacketResponder \d+` is better served by
/// "PacketResponder " than by its ten expansions "PacketResponder 0".."9", which cost ten
/// comparisons per hit); then longer literals on average (`R|v1x20`: the literals of `R` and
/// "v1x20" beat the prefixes "WARN " and "v1x20"); then fewer literals.
fn quality(lits: &[Vec<u8>]) -> (i64, usize, std::cmp::Reverse<usize>) {
    let doublings = i64::from(usize::BITS - lits.len().leading_zeros());
    let total: usize = lits.iter().map(|l| l.len().min(32)).sum();
    (
        min_len(lits).min(32) as i64 - doublings,
        total / lits.len().max(1),
        std::cmp::Reverse(lits.len()),
    )
}

fn better(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if quality(&b) > quality(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A set of literals such that every match of `h` *contains* one of them (ripgrep's "inner
/// literals"): the prefix literals of `h` or of any suffix of a concatenation, a required
/// literal of any concatenated part, the union over alternation branches. None when no set with
/// literals of at least [`MIN_NEEDLE_LEN`] bytes exists.
pub(crate) fn required_literals(h: &Hir) -> Option<Vec<Vec<u8>>> {
    let mut best = prefix_literals(h);
    match h.kind() {
        HirKind::Concat(v) => {
            // PERF: only suffixes that start with a literal, and only their next four parts (the
            // prefixes of those are prefixes of the whole suffix's matches; literals are cut at
            // 32 bytes anyway): 1,000 rules spent ~40 ms here cloning every suffix whole.
            for i in 1..v.len() {
                if matches!(v[i].kind(), HirKind::Literal(_)) {
                    let part = Hir::concat(v[i..v.len().min(i + 4)].to_vec());
                    best = better(best, prefix_literals(&part));
                }
            }
            for child in v {
                best = better(best, required_literals(child));
            }
        }
        HirKind::Alternation(v) => {
            let mut union = Vec::new();
            for child in v {
                match required_literals(child) {
                    Some(l) if union.len() + l.len() <= MAX_RULE_NEEDLES => union.extend(l),
                    _ => return best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN),
                }
            }
            best = better(best, Some(union));
        }
        HirKind::Repetition(r) if r.min >= 1 => best = better(best, required_literals(&r.sub)),
        HirKind::Capture(c) => best = better(best, required_literals(&c.sub)),
        _ => {}
    }
    best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN)
}

/// ASCII case folded out of a rule: literals and classes in lower case. A line matching the rule
/// matches the folded rule once lowered, so the folded rule's required literals, compared
/// ignoring case, are required literals of the rule. None for trees with Unicode classes.
fn fold_case(h: &Hir) -> Option<Hir> {
    Some(match h.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(hir::Literal(bytes)) => Hir::literal(bytes.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => {
            let mut folded = hir::ClassBytes::new(c.iter().flat_map(|r| {
                let (lo, hi) = (r.start().max(b'A'), r.end().min(b'Z'));
                let lower = (lo <= hi).then(|| hir::ClassBytesRange::new(lo | 0x20, hi | 0x20));
                std::iter::once(*r).chain(lower)
            }));
            folded.difference(&hir::ClassBytes::new([hir::ClassBytesRange::new(
                b'A', b'Z',
            )]));
            Hir::class(Class::Bytes(folded))
        }
        HirKind::Class(Class::Unicode(_)) => return None,
        HirKind::Look(look) => Hir::look(*look),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(fold_case(&r.sub)?),
        }),
        HirKind::Capture(c) => fold_case(&c.sub)?,
        HirKind::Concat(v) => Hir::concat(v.iter().map(fold_case).collect::<Option<_>>()?),
        HirKind::Alternation(v) => {
            Hir::alternation(v.iter().map(fold_case).collect::<Option<_>>()?)
        }
    })
}

/// Whether some class holds an ASCII letter in both cases (`(?i)`, `[Cc]`, `\w`): only then
/// can folding case give better literals.
fn has_case_pair(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => c.ranges().iter().any(|r| {
            (r.start()..=r.end()).any(|b| {
                b.is_ascii_uppercase() && {
                    let l = b | 0x20;
                    c.ranges().iter().any(|q| q.start() <= l && l <= q.end())
                }
            })
        }),
        HirKind::Class(Class::Unicode(_)) => true,
        HirKind::Repetition(r) => has_case_pair(&r.sub),
        HirKind::Capture(c) => has_case_pair(&c.sub),
        HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(has_case_pair),
        _ => false,
    }
}

/// The literals a rule's matches must contain, and whether they compare ignoring ASCII case:
/// the better of the rule's own required literals and those of its case-folded form (which
/// wins for `(?i)` rules, whose own literals are 2^n case variants of a short piece). Literals
/// holding `\n` are left out (no match within a line can contain one). None when neither form
/// has literals of at least [`MIN_NEEDLE_LEN`] bytes.
pub fn rule_needles(h: &Hir) -> Option<(Vec<Vec<u8>>, bool)> {
    // Literals holding `\n` go, and so do literals holding another one of the set (any line
    // holding them holds the shorter one too).
    let clean = |v: Vec<Vec<u8>>| {
        let mut v: Vec<Vec<u8>> = v
            .into_iter()
            .filter(|l| memchr::memchr(b'\n', l).is_none())
            .collect();
        v.sort_by_key(Vec::len);
        v.dedup();
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(v.len());
        for l in v {
            if !kept.iter().any(|k| memchr::memmem::find(&l, k).is_some()) {
                kept.push(l);
            }
        }
        (!kept.is_empty()).then_some(kept)
    };
    let exact = required_literals(h).and_then(clean);
    let folded = if has_case_pair(h) {
        fold_case(h)
            .and_then(|f| required_literals(&f))
            .and_then(clean)
    } else {
        None
    };
    match (exact, folded) {
        (Some(e), Some(f)) if quality(&f) > quality(&e) => Some((f, true)),
        (Some(e), _) => Some((e, false)),
        (None, f) => f.map(|f| (f, true)),
    }
}

impl RuleSet {
    /// Compile `patterns` (one regex and rule per entry). `bufsize` is `log-master-bufsize`.
    /// Alarm ranks in `Rule::alarms` must be below `n_alarms`.
    pub fn new(
        patterns: &[(&str, Rule)],
        n_alarms: usize,
        bufsize: usize,
    ) -> Result<RuleSet, RuleError> {
        let build = |hirs: &[Hir], kind: MatchKind, cache: usize| {
            meta::Builder::new()
                .configure(base_config().match_kind(kind).hybrid_cache_capacity(cache))
                .build_many_from_hir(hirs)
                .map_err(|e| RegexError(format!("cannot compile the rules: {e}")))
        };
        // PERF: literal-first. Rules with required literals are found by one hashed multi-literal
        // search (litscan.rs) and each candidate line is confirmed only against the rules whose
        // literals it holds, one small automaton per group of them; the DFA part takes only the
        // rules without
        // literals. rules100 in memory: see PERF.md ("literal-first").
        let mut hirs = Vec::with_capacity(patterns.len());
        let mut found = Vec::with_capacity(patterns.len());
        for (i, (p, _)) in patterns.iter().enumerate() {
            let h = parse_regex(p).map_err(RuleError::of(i))?;
            found.push(rule_needles(&h));
            hirs.push(h);
        }
        // Literals shorter than FAST_NEEDLE_LEN shrink the search's stride for all: a few such
        // rules go to the DFA part (whose regex finds them with its own prefilter), many stay.
        // 6-byte literals join the search at full stride when few (litscan's overhang windows).
        let six_keys: usize = found
            .iter()
            .flatten()
            .filter(|(l, _)| min_len(l) == FAST_NEEDLE_LEN - 1)
            .flat_map(|(l, ci)| {
                l.iter()
                    .filter(|x| x.len() == FAST_NEEDLE_LEN - 1)
                    .map(|x| crate::litscan::overhang_keys(x, *ci))
            })
            .sum();
        let fast_len = |l: &[Vec<u8>]| {
            min_len(l) >= FAST_NEEDLE_LEN
                || (min_len(l) == FAST_NEEDLE_LEN - 1
                    && six_keys <= crate::litscan::MAX_OVERHANG_KEYS)
        };
        let with = found.iter().flatten().count();
        let short = found.iter().flatten().filter(|(l, _)| !fast_len(l)).count();
        let keep_short = short > (with / 20).max(2);
        let mut needles = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of = Vec::with_capacity(patterns.len());
        let mut checks = Vec::with_capacity(patterns.len());
        let mut group_by_literal: std::collections::HashMap<(Vec<u8>, bool), u32> =
            std::collections::HashMap::new();
        let mut dfa_exact = Vec::new();
        let mut dfa_scan = Vec::new();
        let mut ids = Vec::new();
        let mut end_sensitive = false;
        // The DFA part's rules' literals, when they all have case-sensitive ones.
        let mut short_needles: Option<Vec<Vec<u8>>> = Some(Vec::new());
        for (i, (h, lits)) in hirs.into_iter().zip(found).enumerate() {
            let fast = |l: &[Vec<u8>]| keep_short || fast_len(l);
            let lits = lits.filter(|_| needles.len() < MAX_NEEDLES);
            match lits {
                Some((lits, ci)) if fast(&lits) => {
                    // A large rule is compiled now, so that a size error stops start-up like any
                    // regex error (groups are compiled at their first candidate line).
                    if nfa_weight(&h) > EAGER_WEIGHT {
                        group_regex(std::slice::from_ref(&h)).map_err(RuleError::of(i))?;
                    }
                    // PERF: rules sharing a literal are confirmed by one automaton run (the
                    // 1,000-rule set, each rule ten times varied: see PERF.md "groups").
                    let g = lits
                        .iter()
                        .filter_map(|l| group_by_literal.get(&(l.clone(), ci)).copied())
                        .find(|&g| groups[g as usize].rules.len() < MAX_GROUP)
                        .unwrap_or_else(|| {
                            groups.push(Group {
                                rules: Vec::new(),
                                hirs: Vec::new(),
                                re: OnceLock::new(),
                            });
                            (groups.len() - 1) as u32
                        });
                    // PERF: a candidate line is checked for the rule's other literals before its
                    // automaton runs, and a plain literal rule needs no automaton (rules100:
                    // see PERF.md "gates").
                    checks.push(Check {
                        plain: is_plain(&h, &lits, ci),

                        gates: OnceLock::new(),
                    });
                    groups[g as usize].rules.push(i as u32);
                    groups[g as usize].hirs.push(h);
                    group_of.push(g);
                    for l in &lits {
                        group_by_literal.entry((l.clone(), ci)).or_insert(g);
                    }
                    needles.extend(lits.into_iter().map(|l| Needle {
                        bytes: l.into(),
                        ci,
                        rule: i as u32,
                    }));
                }
                other => {
                    match (other, short_needles.as_mut()) {
                        (Some((l, false)), Some(all)) => all.extend(l),
                        _ => short_needles = None,
                    }
                    end_sensitive |= looks_ahead(&h);
                    dfa_scan.push(for_scan(h.clone()));
                    dfa_exact.push(h);
                    ids.push(i as u32);
                    group_of.push(NO_GROUP);
                    checks.push(Check::default());
                }
            }
        }
        let dfa = if ids.is_empty() {
            None
        } else {
            // PERF: the lazy DFA's cache grows with the rule count (8 MiB + 32 KiB a rule, at
            // most 40 MiB): 1,000 rules thrash an 8 MiB cache (5.6 MB/s; 40 MiB ~20 MB/s).
            let cache = ((8 << 20) + ids.len() * (32 << 10)).min(40 << 20);
            let err = |error| RuleError { rule: None, error };
            // PERF: when every DFA-part rule has literals (short ones), Teddy over them finds the
            // candidate lines: meta's own prefilter for `\[(crit|alert|emerg)\]` was memchr of
            // `[` (rules100 on one core: 851-930 MB/s with the rule, 931-1011 without it).
            let pre = short_needles
                .filter(|n| !n.is_empty())
                .and_then(|n| Prefilter::new(MatchKind::LeftmostFirst, &n));
            Some(DfaPart {
                pre,
                scan: build(&dfa_scan, MatchKind::LeftmostFirst, cache).map_err(err)?,
                exact: build(&dfa_exact, MatchKind::All, cache).map_err(err)?,
                ids,
            })
        };
        Ok(RuleSet {
            lits: LitScan::new(needles),
            groups,
            group_of,
            checks,
            dfa,
            rules: patterns.iter().map(|(_, r)| r.clone()).collect(),
            n_alarms,
            bufsize: bufsize.max(1),
            end_sensitive,
        })
    }

    /// Compile `(regex, alarm ranks, negate)` triples (tests, benches, fuzzing).
    pub fn from_triples(
        rules: &[(&str, &[u32], bool)],
        n_alarms: usize,
        bufsize: usize,
    ) -> Result<RuleSet, RuleError> {
        let pats: Vec<(&str, Rule)> = rules
            .iter()
            .map(|(p, a, n)| {
                (
                    *p,
                    Rule {
                        alarms: a.to_vec(),
                        negate: *n,
                    },
                )
            })
            .collect();
        RuleSet::new(&pats, n_alarms, bufsize)
    }

    /// Every pattern raises alarm 0 (benches and probes over plain rule files).
    pub fn one_alarm(patterns: &[&str], bufsize: usize) -> Result<RuleSet, RuleError> {
        let triples: Vec<(&str, &[u32], bool)> =
            patterns.iter().map(|p| (*p, &[0u32][..], false)).collect();
        RuleSet::from_triples(&triples, 1, bufsize)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The literal search (None when no rule has literals it takes): for probes and benches.
    pub fn literal_search(&self) -> Option<&LitScan> {
        self.lits.as_ref()
    }

    /// `log-master-bufsize`.
    pub fn bufsize(&self) -> usize {
        self.bufsize
    }

    /// Per-thread matching state for this rule set.
    pub fn matcher(&self) -> Matcher<'_> {
        let words = self.rules.len().div_ceil(64);
        Matcher {
            set: self,
            group_caches: self.groups.iter().map(|_| None).collect(),
            group_set: PatternSet::new(MAX_GROUP),
            groups_run: Vec::with_capacity(MAX_GROUP),
            scan_cache: self.dfa.as_ref().map(|d| d.scan.create_cache()),
            exact_cache: self.dfa.as_ref().map(|d| d.exact.create_cache()),
            patset: PatternSet::new(self.dfa.as_ref().map_or(0, |d| d.ids.len())),
            lit_hits: Vec::new(),
            named: Vec::with_capacity(self.rules.len().min(64)),
            seen: vec![0; words],
            pos_bits: vec![0; self.n_alarms.div_ceil(64)],
            neg_bits: vec![0; self.n_alarms.div_ceil(64)],
            hits: Vec::with_capacity(self.n_alarms),
        }
    }
}

/// The bytes of a line without its `\n` (and a `\r` before it).
#[inline]
pub(crate) fn without_terminator(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r', b'\n'] => rest,
        [rest @ .., b'\n'] => rest,
        _ => line,
    }
}

/// Matching state: caches and scratch, reused for every buffer (no allocation per line).
#[derive(Debug)]
pub struct Matcher<'r> {
    set: &'r RuleSet,
    /// Per-group caches, made at a group's first candidate.
    group_caches: Vec<Option<meta::Cache>>,
    group_set: PatternSet,
    /// Groups already run for the current line.
    groups_run: Vec<u32>,
    scan_cache: Option<meta::Cache>,
    exact_cache: Option<meta::Cache>,
    patset: PatternSet,
    /// The literal search's hits over the region being scanned: (literal start, rule), all of
    /// a line's before any of a later line's. Reused: no allocation per line.
    lit_hits: Vec<(usize, u32)>,
    /// Rules whose literals the current line holds, each once (`seen` is their bitset).
    named: Vec<u32>,
    seen: Vec<u64>,
    pos_bits: Vec<u64>,
    neg_bits: Vec<u64>,
    hits: Vec<u32>,
}

impl<'r> Matcher<'r> {
    /// The rule set this matcher runs.
    pub fn rules(&self) -> &'r RuleSet {
        self.set
    }

    /// Report every line of `buf` that raises alarms: `on_hit(message, alarm_ranks)`, in line
    /// order. `buf` holds whole lines; only its last line may lack a `\n`. The message is the
    /// line with its terminator, cut to `log-master-bufsize`. Returns the number of lines
    /// confirmed (matched at least one rule, or were checked because they were cut).
    pub fn scan_lines(&mut self, buf: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) -> usize {
        if self.set.rules.is_empty() {
            return 0;
        }
        let bufsize = self.set.bufsize;
        if !self.set.end_sensitive || buf.len() <= bufsize {
            return self.scan_range(buf, 0, buf.len(), on_hit);
        }
        // Some rule could match at the cut of a line longer than bufsize, which the scan cannot
        // see (it sees the whole line): find such lines and confirm them one by one.
        // PERF: one `memrchr` per window of `bufsize` bytes, not a step per line: every line that
        // starts in a window and ends at its last `\n` is short; only a window without any `\n`
        // starts a long line.
        let mut confirmed = 0;
        let mut pos = 0; // scanned up to here
        let mut p = 0; // the line starting here is not known to be short yet
        while p + bufsize < buf.len() {
            match memchr::memrchr(b'\n', &buf[p..p + bufsize]) {
                Some(j) => p += j + 1,
                None => {
                    let end = memchr::memchr(b'\n', &buf[p + bufsize..])
                        .map_or(buf.len(), |i| p + bufsize + i + 1);
                    confirmed += self.scan_range(buf, pos, p, on_hit);
                    confirmed += 1;
                    self.confirm(&buf[p..end], on_hit);
                    pos = end;
                    p = end;
                }
            }
        }
        confirmed + self.scan_range(buf, pos, buf.len(), on_hit)
    }

    /// The candidate line of `hits[i..]` (hits of the region `[pos, to)`, `pos` a line start):
    /// its start and end, and its hits `hits[i..j]`.
    fn next_lit_line(
        hits: &[(usize, u32)],
        i: usize,
        buf: &[u8],
        pos: usize,
        to: usize,
    ) -> Option<(usize, usize, usize, usize)> {
        let &(at, _) = hits.get(i)?;
        let (start, end) = line_around(buf, pos, at, to);
        let j = hits[i..]
            .iter()
            .position(|&(p, _)| p >= end)
            .map_or(hits.len(), |k| i + k);
        Some((start, end, i, j))
    }

    /// The next candidate line at or after `pos` (a line start) that the DFA part finds.
    fn next_dfa_line(&mut self, buf: &[u8], pos: usize, to: usize) -> Option<(usize, usize)> {
        let (dfa, cache) = (self.set.dfa.as_ref()?, self.scan_cache.as_mut()?);
        let at = match &dfa.pre {
            Some(pre) => pre.find(buf, Span::from(pos..to))?.start,
            None => {
                let input = Input::new(buf).range(pos..to).earliest(true);
                dfa.scan.search_half_with(cache, &input)?.offset()
            }
        };
        let (start, end) = line_around(buf, pos, at, to);
        // An empty match after the last `\n` is not a line.
        (start < end).then_some((start, end))
    }

    /// The fast path over `buf[from..to]` (both at line starts, or `to` at the end): the
    /// candidate lines of the literal search and of the DFA part, merged in line order.
    fn scan_range(
        &mut self,
        buf: &[u8],
        from: usize,
        to: usize,
        on_hit: &mut dyn FnMut(&[u8], &[u32]),
    ) -> usize {
        let mut confirmed = 0;
        let mut pos = from;
        // PERF: one literal search over the whole region, its hits kept in order: a candidate
        // line's rules are named by its hits, without searching the line again (rules100:
        // see PERF.md "hits kept"). The DFA part remembers its next candidate line until the
        // literal hits catch up.
        let mut hits = std::mem::take(&mut self.lit_hits);
        hits.clear();
        if let Some(lits) = self.set.lits.as_ref() {
            lits.each(buf, from, to, &mut |p, n| {
                hits.push((p, n.rule));
                true
            });
        }
        let mut lit = Self::next_lit_line(&hits, 0, buf, pos, to);
        let mut dfa = self.next_dfa_line(buf, pos, to);
        loop {
            // The earlier of the two candidate lines (both, when they are the same line).
            let (by_lit, by_dfa) = match (lit, dfa) {
                (None, None) => break,
                (Some(l), Some(d)) => (l.0 <= d.0, d.0 <= l.0),
                (l, _) => (l.is_some(), l.is_none()),
            };
            let (start, end, names) = match (lit, dfa) {
                (Some((s, e, i, j)), _) if by_lit => (s, e, Names::Hits(&hits[i..j])),
                (_, Some((s, e))) => (s, e, Names::None),
                _ => break,
            };
            confirmed += 1;
            self.confirm_as(&buf[start..end], names, by_dfa, on_hit);
            pos = end;
            if by_lit {
                let next = lit.map_or(hits.len(), |l| l.3);
                lit = Self::next_lit_line(&hits, next, buf, pos, to);
            }
            if by_dfa {
                dfa = self.next_dfa_line(buf, pos, to);
            }
        }
        self.lit_hits = hits;
        confirmed
    }

    /// Exact check of one line (with terminator) against every rule; reports it if it raises
    /// any alarm.
    pub fn confirm(&mut self, line: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) {
        self.confirm_as(line, Names::Search, true, on_hit);
    }

    /// Exact check of one line against the rules its literals name (`by_lit`) and the DFA
    /// part's rules (`by_dfa`).
    fn confirm_as(
        &mut self,
        line: &[u8],
        names: Names<'_>,
        by_dfa: bool,
        on_hit: &mut dyn FnMut(&[u8], &[u32]),
    ) {
        if line.starts_with(SELF_PREFIX) {
            return;
        }
        let set = self.set;
        let (msg, text) = cut(line, set.bufsize);
        self.pos_bits.fill(0);
        self.neg_bits.fill(0);
        let mut any = false;
        // A cut line is searched again: a match within the cut text holds one of its rule's
        // literals within the cut text (plain rules need exactly that).
        let names = match names {
            Names::Hits(_) if msg.len() < line.len() => Names::Search,
            other => other,
        };
        if let (false, Some(lits)) = (matches!(names, Names::None), set.lits.as_ref()) {
            // Which rules' literals the (cut) line holds.
            clear_named(&mut self.named, &mut self.seen);
            let (named, seen) = (&mut self.named, &mut self.seen);
            match names {
                Names::Hits(hits) => {
                    for &(_, rule) in hits {
                        name(named, seen, rule);
                    }
                }
                _ => lits.each(text, 0, text.len(), &mut |_, n| {
                    name(named, seen, n.rule);
                    true
                }),
            }
            self.groups_run.clear();
            for &r in &self.named {
                let g = set.group_of[r as usize];
                let Some(group) = set.groups.get(g as usize) else {
                    continue;
                };
                let check = &set.checks[r as usize];
                let gates = check.gates.get_or_init(|| {
                    group
                        .rules
                        .iter()
                        .position(|&x| x == r)
                        .map(|i| gates_of(&group.hirs[i], &lits.literals_of(r)))
                        .unwrap_or_default()
                });
                if !gates.iter().all(|g| g.holds(text)) {
                    continue;
                }
                if check.plain {
                    any = true;
                    mark(
                        &mut self.pos_bits,
                        &mut self.neg_bits,
                        &set.rules[r as usize],
                    );
                    continue;
                }
                if self.groups_run.contains(&g) {
                    continue;
                }
                self.groups_run.push(g);
                let Ok(re) = group.re.get_or_init(|| group_regex(&group.hirs)) else {
                    // Cannot happen for rules of small weight (and large ones were compiled
                    // at start-up, where an error stops logalarm); never matches then.
                    continue;
                };
                let cache = self.group_caches[g as usize].get_or_insert_with(|| re.create_cache());
                self.group_set.clear();
                re.which_overlapping_matches_with(cache, &Input::new(text), &mut self.group_set);
                for pid in self.group_set.iter() {
                    any = true;
                    let rule = group.rules[pid.as_usize()] as usize;
                    mark(&mut self.pos_bits, &mut self.neg_bits, &set.rules[rule]);
                }
            }
        }
        if let (true, Some(dfa), Some(cache)) =
            (by_dfa, set.dfa.as_ref(), self.exact_cache.as_mut())
        {
            self.patset.clear();
            dfa.exact
                .which_overlapping_matches_with(cache, &Input::new(text), &mut self.patset);
            for pid in self.patset.iter() {
                any = true;
                let r = dfa.ids[pid.as_usize()] as usize;
                mark(&mut self.pos_bits, &mut self.neg_bits, &set.rules[r]);
            }
        }
        if !any {
            return;
        }
        self.hits.clear();
        for (w, (p, n)) in self.pos_bits.iter().zip(&self.neg_bits).enumerate() {
            let mut bits = p & !n;
            while bits != 0 {
                let b = bits.trailing_zeros();
                self.hits.push(w as u32 * 64 + b);
                bits &= bits - 1;
            }
        }
        if !self.hits.is_empty() {
            on_hit(msg, &self.hits);
        }
    }
}

/// How a candidate line's rules are named.
#[derive(Clone, Copy)]
enum Names<'h> {
    /// Not a literal candidate (only the DFA part's rules run).
    None,
    /// By the literal search's hits in the line.
    Hits(&'h [(usize, u32)]),
    /// By searching the line (cut to `log-master-bufsize`) again.
    Search,
}

/// The message of a line (cut to `bufsize`) and the text its rules see (the message without
/// its terminator when the line was not cut).
#[inline]
fn cut(line: &[u8], bufsize: usize) -> (&[u8], &[u8]) {
    let msg = &line[..line.len().min(bufsize)];
    if msg.len() == line.len() {
        (msg, without_terminator(msg))
    } else {
        (msg, msg)
    }
}

/// Add a rule to the named ones, once (`seen` is their bitset).
#[inline]
fn name(named: &mut Vec<u32>, seen: &mut [u64], rule: u32) {
    let (w, b) = (rule as usize / 64, 1u64 << (rule % 64));
    if seen[w] & b == 0 {
        seen[w] |= b;
        named.push(rule);
    }
}

/// Forget the named rules.
#[inline]
fn clear_named(named: &mut Vec<u32>, seen: &mut [u64]) {
    for r in named.drain(..) {
        seen[r as usize / 64] &= !(1u64 << (r % 64));
    }
}

/// Set the alarm bits a matching rule names.
#[inline]
fn mark(pos: &mut [u64], neg: &mut [u64], rule: &Rule) {
    let bits = if rule.negate { neg } else { pos };
    for &a in &rule.alarms {
        bits[a as usize / 64] |= 1 << (a % 64);
    }
}

/// The line of `buf[pos..to]` (`pos` a line start) holding position `at`.
#[inline]
fn line_around(buf: &[u8], pos: usize, at: usize, to: usize) -> (usize, usize) {
    let start = memchr::memrchr(b'\n', &buf[pos..at]).map_or(pos, |i| pos + i + 1);
    let end = memchr::memchr(b'\n', &buf[at..to]).map_or(to, |i| at + i + 1);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &[(&str, &[u32], bool)], bufsize: usize) -> RuleSet {
        RuleSet::from_triples(rules, 8, bufsize).unwrap()
    }

    fn hits(s: &RuleSet, buf: &[u8]) -> Vec<(String, Vec<u32>)> {
        let mut m = s.matcher();
        let mut out = Vec::new();
        m.scan_lines(buf, &mut |l, a| {
            out.push((String::from_utf8_lossy(l).into_owned(), a.to_vec()))
        });
        out
    }

    #[test]
    fn finds_lines_and_alarms() {
        let s = set(&[("ERR", &[0], false), ("^WARN", &[1], false)], 8192);
        let got = hits(&s, b"ok\nan ERR here\nWARN x\nxWARN\nERR and WARN\n");
        assert_eq!(
            got,
            vec![
                ("an ERR here\n".into(), vec![0]),
                ("WARN x\n".into(), vec![1]),
                ("ERR and WARN\n".into(), vec![0]),
            ]
        );
    }

    #[test]
    fn anchors_are_per_line_and_crlf_aware() {
        let s = set(&[("^a$", &[0], false), ("\\Ab\\z", &[1], false)], 8192);
        let got = hits(&s, b"a\r\nxa\nb\nb\r\na\n\nab\na");
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["a\r\n", "b\n", "b\r\n", "a\n", "a"]);
    }

    #[test]
    fn lone_cr_inside_a_line_is_not_a_line_end() {
        let s = set(
            &[
                ("a$", &[0], false),
                ("^b", &[1], false),
                ("a.b", &[2], false),
            ],
            8192,
        );
        let got = hits(&s, b"xa\rby\n");
        assert_eq!(got, vec![("xa\rby\n".into(), vec![2])]);
    }

    #[test]
    fn classes_never_cross_lines() {
        let s = set(
            &[
                ("a\\sb", &[0], false),
                ("a[^x]b", &[1], false),
                ("a\\nb", &[2], false),
            ],
            8192,
        );
        assert!(hits(&s, b"a\nb\n").is_empty());
        assert_eq!(hits(&s, b"a b\n"), vec![("a b\n".into(), vec![0, 1])]);
    }

    #[test]
    fn negative_rules_subtract_only_their_names() {
        let s = set(
            &[
                ("x", &[0, 1], false),
                ("skip", &[0], true),
                ("y", &[2], false),
            ],
            8192,
        );
        let got = hits(&s, b"x\nx skip\nskip y\nx y skip\n");
        assert_eq!(
            got,
            vec![
                ("x\n".into(), vec![0, 1]),
                ("x skip\n".into(), vec![1]),
                ("skip y\n".into(), vec![2]),
                ("x y skip\n".into(), vec![1, 2]),
            ]
        );
    }

    #[test]
    fn self_prefix_is_never_matched() {
        let s = set(&[("", &[0], false)], 8192);
        let got = hits(&s, b"[uwsgi-alarm-curl] x\n[uwsgi-alarX\n");
        assert_eq!(got, vec![("[uwsgi-alarX\n".into(), vec![0])]);
    }

    #[test]
    fn empty_regex_matches_every_line_including_empty_ones() {
        let s = set(&[("", &[0], false)], 8192);
        assert_eq!(hits(&s, b"\n\nx\n").len(), 3);
    }

    #[test]
    fn bufsize_cuts_match_text_and_message() {
        let s = set(&[("abc$", &[0], false), ("zzz", &[1], false)], 5);
        let got = hits(&s, b"xxabcdef\nzzz\nxxxxxxzzz\n");
        assert_eq!(
            got,
            vec![("xxabc".into(), vec![0]), ("zzz\n".into(), vec![1])]
        );
    }

    #[test]
    fn bytes_not_utf8() {
        let s = set(
            &[("\\xff.\\x00", &[0], false), ("(?i)error", &[1], false)],
            8192,
        );
        let got = hits(&s, b"\xff\xfe\x00\nERROR\n\xc3(\n");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn plain_rules_and_gates() {
        let plain = |p: &str| {
            let h = parse_regex(p).unwrap();
            let (lits, ci) = rule_needles(&h).unwrap();
            is_plain(&h, &lits, ci)
        };
        assert!(plain("Connection refused"));
        assert!(plain("(?i)machine check"));
        assert!(plain("kernel panic|rts panic"));
        // Case kept for some letters, a class, a cut literal, an anchor: the automaton decides.
        assert!(!plain("[Cc]onnection refused"));
        assert!(!plain("(?i)machine CHECK|OutOfMemoryError"));
        assert!(!plain("^Connection refused"));
        assert!(!plain(r"Connection refused\d"));
        assert!(!plain(&"x".repeat(40)));
        let gates = |p: &str| {
            let h = parse_regex(p).unwrap();
            let (lits, _) = rule_needles(&h).unwrap();
            gates_of(&h, &lits)
        };
        let g = gates("open through proxy \\S+:\\d+ (?i:error)");
        assert_eq!(g.len(), 1);
        assert!(g[0].holds(b"x open through proxy h:1 ERROR"));
        assert!(!g[0].holds(b"x open through proxy h:1 HTTPS"));
        let g = gates("PacketResponder \\d+ for block blk_-?\\d+ Interrupted");
        assert_eq!(g.len(), 2);
        assert!(gates("Connection refused").is_empty());
        // A part the chosen literal holds is no gate.
        assert!(gates("abcdefgh.*bcd").is_empty());
        // Alternation: one set of each branch.
        let g = gates(r"open through proxy \S+:\d+ (?i:error)|v3x69");
        assert_eq!(g.len(), 1);
        assert!(g[0].holds(b"open through proxy h:1 eRRor"));
        assert!(g[0].holds(b"open through proxy h:1 v3x69"));
        assert!(!g[0].holds(b"open through proxy h:1 HTTPS"));
        assert!(contains_folded(b"xxERrorx", b"error"));
        assert!(!contains_folded(b"xxERrox", b"error"));
        assert!(contains_folded(b"abc", b""));
    }

    #[test]
    fn required_literals_are_inner_literals() {
        let lits = |p: &str| required_literals(&parse_regex(p).unwrap());
        assert_eq!(
            lits("^\\d{4}-\\d\\d (ERROR|FATAL) \\["),
            Some(vec![b" ERROR [".to_vec(), b" FATAL [".to_vec()])
        );
        assert_eq!(
            lits("Failed password for \\S+"),
            Some(vec![b"Failed password for ".to_vec()])
        );
        assert_eq!(lits("^\\d+$"), None);
        assert_eq!(lits("ab|\\d+"), None);
        assert!(lits("(?i)machine check").is_some());
    }

    #[test]
    fn the_dfa_takes_only_the_rules_without_literals() {
        let s = set(
            &[
                ("ERROR: disk", &[0], false),
                ("^\\d+$", &[1], false),
                ("(?i)warn", &[2], false),
            ],
            8192,
        );
        assert!(s.lits.is_some() && s.dfa.as_ref().is_some_and(|d| d.ids == [1, 2]));
        let got = hits(&s, b"12\nx ERROR: disk\nok\n345\nERROR: disk 9\nWaRn\n");
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            vec![
                "12\n",
                "x ERROR: disk\n",
                "345\n",
                "ERROR: disk 9\n",
                "WaRn\n"
            ]
        );
        let only = set(
            &[
                ("ERROR: disk", &[0], false),
                ("(abcd|bcde)fgh", &[1], false),
                ("(?i)machine check", &[2], false),
            ],
            8192,
        );
        assert!(only.lits.is_some() && only.dfa.is_none());
        let got = hits(&only, b"x\nbcdefgh\nok\nERROR: disk\nMACHINE Check\n");
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["bcdefgh\n", "ERROR: disk\n", "MACHINE Check\n"]);
    }

    #[test]
    fn unsupported_syntax_is_a_clear_error() {
        let e = parse_regex("a(?=b)").unwrap_err();
        assert!(e.0.contains("look-around"), "{}", e.0);
        let e = parse_regex("(a)\\1").unwrap_err();
        assert!(e.0.contains("backreference"), "{}", e.0);
        let e = parse_regex("(unclosed").unwrap_err();
        assert!(e.0.contains("offset"), "{}", e.0);
    }
}
