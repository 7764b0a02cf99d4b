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
//! * A few rules whose literals are shorter than [`FAST_NEEDLE_LEN`] bytes, beside many with
//!   longer ones, get a second [`LitScan`] of their own (`short`): the long literals keep their
//!   stride, and its hits name rules for confirmation like the first one's.
//! * The other rules (without literals; with short ones and none beside them with long ones;
//!   or short literals that are the whole rule) form the *DFA part*: `scan`, one
//!   regex-automata lazy DFA of all of them, rewritten so that no match can cross a line (`\n`
//!   removed from every class and literal, `^`/`\A` become "after `\n`, or `\r` not before
//!   `\n`", `$`/`\z` become "before `\r` or `\n`"), searches the whole buffer for candidates
//!   (or Teddy over their literals, when they all have some; or, when there are at most four
//!   and each holds a rare *window of byte classes* — `[A-Z]` then seven `[A-Z0-9_]` — a
//!   shufti search for those windows, [`ClassScan`]; those of them anchored at a line's start
//!   or end, when the windows of all are not rare together, by an automaton anchored there,
//!   [`line_ends`]); `exact` (MatchKind::All) gives the set of them that a candidate line
//!   matches.
//! * Both candidate streams are merged in line order; each line is confirmed cut to
//!   `log-master-bufsize` and without its terminator: the exact semantics. A line stops
//!   meeting rules once they cannot change its alarms (a rule naming only alarms the line
//!   raised or cancelled is not confirmed) unless every rule is counted
//!   (`Matcher::count_every_rule`: `--metrics`, `replay`).
//! * A rule every match of which holds a newline never matches a line and is in no search.
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
//! realistic rules: 600 s and 2.4 GB RSS without finishing). PCRE constructs the automaton
//! cannot run are run in a relaxed form whose lines PCRE2 confirms (`pcre`,
//! `RuleSet::set_confirmers`); rules in Rust syntax with look-around are refused at start-up.

use crate::litscan::classes::{ClassScan, MAX_WINDOWS};
use crate::litscan::{LitScan, Needle};
use regex_automata::meta::{self, Regex};
use regex_automata::util::prefilter::Prefilter;
use regex_automata::{Input, MatchKind, PatternSet, Span};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{self, Class, Hir, HirKind, Look};
use std::sync::{Arc, OnceLock};

pub(crate) mod cache;
mod chain;
mod cost;
pub(crate) mod fields;
mod gate;
mod line_ends;
mod literals;
mod matcher;
pub(crate) mod pcre;
mod placed;
mod quick;
mod syntax;
mod windows;

#[cfg(test)]
pub(crate) use cost::xorshift;
pub(crate) use cost::Cost;
use gate::*;
use line_ends::LineEndsCache;
pub use literals::rule_needles;
use literals::*;
pub(crate) use matcher::without_terminator;
pub use matcher::{Matcher, RuleCost};
pub(crate) use syntax::needs_a_newline;
pub use syntax::parse_regex;
use syntax::*;

/// What [`RuleSet::candidate_search`] tells: how many rules the DFA part has, the searches
/// that find their candidate lines, and the rules to blame when none covers them all.
pub(crate) type CandidateSearch<'a> = (usize, Vec<&'static str>, Option<&'a [u32]>);

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

/// All rules, compiled: a cheap handle (an `Arc`), so the reader's pipelines and a reload can
/// share one compiled set and a reload can swap it while old matchers finish their buffer.
#[derive(Debug, Clone)]
pub struct RuleSet(Arc<Compiled>);

impl std::ops::Deref for RuleSet {
    type Target = Compiled;
    fn deref(&self) -> &Compiled {
        &self.0
    }
}

/// The compiled rules behind a [`RuleSet`].
#[derive(Debug)]
pub struct Compiled {
    /// The literals of the rules that have some (see [`rule_needles`]): their hits name the
    /// rules to confirm.
    lits: Option<LitScan>,
    /// `lits` placed again by the stream's window counts, shared by the matchers.
    placement: placed::Placement,
    /// The literals of the few rules whose literals are too short for `lits` (see
    /// [`FastLiterals`]), searched on their own beside it.
    short: Option<LitScan>,
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
    /// Per rule, what confirms the lines its automaton pattern matches: the PCRE of a rule
    /// run in a relaxed form (see `pcre`), or a field rule's parser (see `fields`); empty
    /// when no rule needs one.
    confirm: Vec<Option<Confirmer>>,
    /// Per rule, the bits of the alarms it names and whether it is a `not-log-alarm` rule;
    /// empty unless there are 1 to 64 alarms (see [`Matcher::count_every_rule`]).
    decides: Vec<(u64, bool)>,
    /// With `decides`: the alarms some rule names, and those no `not-log-alarm` rule names (a
    /// line that raised one of these has decided it).
    ruled: u64,
    unnegated: u64,
    /// The rules that can never match a line (every match holds a newline: see
    /// [`needs_a_newline`]), in order.
    never: Vec<usize>,
}

/// What confirms a rule's candidate lines beyond its automaton pattern.
#[derive(Debug)]
pub(crate) enum Confirmer {
    /// The rule as written, by PCRE2 (its pattern is a relaxed form).
    Pcre(LazyJit),
    /// A field rule: the line parsed, every field checked.
    Fields(fields::FieldRule),
}

/// A rule's PCRE: compiled (so checked) at start-up, JIT-compiled at its first candidate line.
// PERF: JIT for Debian's 194 PCRE-confirmed rules took 10-13 ms of start-up, compiling 4 ms;
// most of those rules never see a candidate line in a given log.
#[derive(Debug)]
pub(crate) struct LazyJit {
    pattern: String,
    interpreted: pcre2::bytes::Regex,
    jit: OnceLock<Option<pcre2::bytes::Regex>>,
}

impl LazyJit {
    /// Compile `pattern` as uWSGI compiles rules (no options: no UTF, no multi-line, `.` not
    /// newline); the JIT comes later.
    pub(crate) fn new(pattern: &str) -> Result<LazyJit, pcre2::Error> {
        Ok(LazyJit {
            interpreted: pcre2::bytes::RegexBuilder::new().build(pattern)?,
            pattern: pattern.to_string(),
            jit: OnceLock::new(),
        })
    }

    /// Whether the rule matches `text` (JIT when PCRE2 has it; a PCRE error, such as its match
    /// limit, is no match, as in uWSGI).
    pub(crate) fn is_match(&self, text: &[u8]) -> bool {
        let jit = self.jit.get_or_init(|| {
            pcre2::bytes::RegexBuilder::new()
                .jit_if_available(true)
                .build(&self.pattern)
                .ok()
        });
        jit.as_ref()
            .unwrap_or(&self.interpreted)
            .is_match(text)
            .unwrap_or(false)
    }
}

/// Rules the literal search finds, confirmed together: rules that share a literal are named by
/// the same lines, so one automaton run (`MatchKind::All`) confirms them all. Most groups hold
/// one rule. Compiled at the group's first candidate line.
#[derive(Debug)]
struct Group {
    /// Rule index of each of the automaton's patterns.
    rules: Vec<u32>,
    /// The rules' patterns, parsed at the group's first candidate line when start-up did not
    /// parse them (a rules cache hit: see `cache`).
    patterns: Vec<Box<str>>,
    hirs: OnceLock<Vec<Hir>>,
    re: OnceLock<Result<Regex, RegexError>>,
    /// Whether its rules name the same alarms the same way: which of them matched changes no
    /// line's alarms (see `RuleSet::alike`).
    alike: OnceLock<Alike>,
    /// Each rule's walk, in `rules`' order, when every one of them has one ([`chain::Chain`]):
    /// the group's automaton then never runs. Made at the group's first candidate line.
    chains: OnceLock<Option<Box<[chain::Chain]>>>,
}

impl Group {
    /// The rules' syntax trees. A pattern that no longer parses (it did when its cache record
    /// was made, by this same executable) never matches.
    fn hirs(&self) -> &[Hir] {
        self.hirs.get_or_init(|| {
            self.patterns
                .iter()
                .map(|p| parse_regex(p).unwrap_or_else(|_| Hir::fail()))
                .collect()
        })
    }

    /// The walk of rule `r` of the group, when every rule of the group has one.
    #[inline]
    fn chain(&self, r: u32) -> Option<&chain::Chain> {
        let chains = self.chains.get_or_init(|| {
            let hirs = self.hirs();
            let all = hirs
                .iter()
                .map(|h| chain::Chain::of(&syntax::for_existence(h)));
            all.collect::<Option<Vec<_>>>().map(Vec::into_boxed_slice)
        });
        let i = self.rules.iter().position(|&x| x == r)?;
        chains.as_ref()?.get(i)
    }
}

const NO_GROUP: u32 = u32::MAX;

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

/// A group's automaton (which of its rules match the line, each in its existence form
/// (`syntax::for_existence`), the default lazy DFA cache, no prefilter: the literal search
/// already found a literal of theirs in the line).
fn group_regex(hirs: &[Hir]) -> Result<Regex, RegexError> {
    meta::Builder::new()
        .configure(
            base_config()
                .match_kind(MatchKind::All)
                .auto_prefilter(false),
        )
        .build_many_from_hir(&hirs.iter().map(syntax::for_existence).collect::<Vec<_>>())
        .map_err(|e| RegexError(format!("cannot compile the rule: {e}")))
}

/// Each rule parsed, with its required literals, in order; its tree kept when the DFA part may
/// take it or its automaton is built at start-up. PERF: a large set is parsed on every core
/// (parsing and literal extraction are most of the start-up with 2,000 rules), in chunks of 16
/// rules drawn in turn (PERF.md "twenty-sixth run"); a rule the literal search surely takes is
/// parsed again at its first candidate line, as after a warm start, and its tree's memory
/// serves the next rule's parse (Debian's 2,101 rules: 5 MB of fresh pages, ~1,300 page
/// faults, at every cold start).
fn parse_all(patterns: &[(&str, Rule)]) -> Vec<Result<(Option<Hir>, cache::Record), RuleError>> {
    let one = |i: usize| {
        let p = patterns[i].0;
        if let Some(parsed) = parse_ignoring_case(p) {
            return parsed.map_err(RuleError::of(i));
        }
        let h = parse_regex(p).map_err(RuleError::of(i))?;
        let lits = rule_needles(&h);
        let record = cache::Record {
            plain: lits.as_ref().is_some_and(|(l, ci)| is_plain(&h, l, *ci)),
            prefix: lits.as_ref().is_some_and(|(l, ci)| is_prefix(&h, l, *ci)),
            heavy: nfa_weight(&h) > EAGER_WEIGHT,
            lits,
        };
        Ok((kept_tree(h, &record), record))
    };
    crate::par::map(patterns.len(), parallel_threads(patterns.len()), 16, one)
}

/// Whether the literal search surely takes a rule with literals `lits` (its tree can then wait
/// for its first candidate line).
fn searched(lits: &Option<RuleLiterals>) -> bool {
    lits.as_ref()
        .is_some_and(|(l, _)| min_len(l) >= FAST_NEEDLE_LEN)
}

/// The tree `h` of the rule `record` describes, when start-up keeps it: the rule is compiled
/// at start-up (heavy) or the DFA part may take it (not surely searched).
fn kept_tree(h: Hir, record: &cache::Record) -> Option<Hir> {
    (record.heavy || !searched(&record.lits)).then_some(h)
}

/// [`parse_all`]'s work for a rule that ignores ASCII case throughout (`(?i)` in front, see
/// [`syntax::case_kept`]): its literals from the rule keeping case (see
/// `literals::needles_ignoring_case`), and the rule itself parsed only when its tree is kept.
/// None when it is not such a rule or its case-kept form does not parse (it is then parsed as
/// written). PERF: each letter of a rule ignoring case parses to a class of its two cases
/// (allocated, joined, dropped) and its literals were found by folding those classes back:
/// Debian's 2,101 rules each behind `(?i)` spent 503 M instructions of a cold start on their
/// parse and literals, against 271 M for the same rules as written (PERF.md "thirty-third run").
fn parse_ignoring_case(p: &str) -> Option<Result<(Option<Hir>, cache::Record), RegexError>> {
    let kept = parse_regex(&syntax::case_kept(p)?).ok()?;
    let own = rule_needles(&kept);
    // The rule keeping case is its literals and nothing else: so is the rule ignoring case,
    // compared ignoring case.
    let plain = own.as_ref().is_some_and(|(l, ci)| is_plain(&kept, l, *ci));
    let mut record = cache::Record {
        plain,
        prefix: false,
        heavy: false,
        lits: own.and_then(|(l, _)| needles_ignoring_case(&l).map(|l| (l, true))),
    };
    // Folding case adds at most two ranges to each byte or range: the rule ignoring case weighs
    // at most three times as much as the rule keeping it.
    if searched(&record.lits) && nfa_weight(&kept).saturating_mul(3) <= EAGER_WEIGHT {
        return Some(Ok((None, record)));
    }
    Some(parse_regex(p).map(|h| {
        record.heavy = nfa_weight(&h) > EAGER_WEIGHT;
        (kept_tree(h, &record), record)
    }))
}

/// Threads for start-up work over `n` rules: one below 256 (a few milliseconds of work), else
/// every core.
pub(crate) fn parallel_threads(n: usize) -> usize {
    if n < 256 {
        1
    } else {
        crate::par::cores()
    }
}

/// Rules matched by automata instead of literals: a scan automaton over the whole buffer, and
/// an exact one giving the set of rules on a candidate line.
#[derive(Debug)]
struct DfaPart {
    /// The case-sensitive literals of these rules that have them (short ones: see
    /// [`FastLiterals`]).
    pre: Option<Prefilter>,
    /// `pre`'s literal when it has only one: looked for near the last candidate line first
    /// (PERF: a storm of lines holding `STORM` mid-line spent a fifth of the reader in the
    /// searcher's calls, each finding the next line's `STORM` a few bytes on; PERF.md
    /// "seventeenth run").
    near: Option<Box<[u8]>>,
    /// The rare windows of byte classes of the others (see [`class_scan`]), or of those of
    /// them not in `ends`.
    classes: Option<ClassScan>,
    /// When `classes` alone finds every rule's candidate lines: how far after the start of
    /// every match one of its windows surely starts (`windows::window_place`), so that the
    /// automaton starts that far before the line's first window. PERF: the upper-case
    /// identifier's automaton ran from each candidate line's start (PERF.md "forty-fifth
    /// run").
    window_lead: Option<usize>,
    /// Whether some of these rules have neither case-sensitive literals nor a place in
    /// `ends` (so `pre` and `ends` alone do not find all candidate lines). The searches find
    /// the candidate lines instead of `scan` when together they cover every rule; the builder
    /// leaves them all out otherwise.
    needs_classes: bool,
    /// The rules without literals anchored at a line's start or end whose windows were not
    /// rare enough, checked at each line's ends (see [`line_ends`]).
    ends: Option<line_ends::LineEnds>,
    /// When no search covers every rule here (the automaton runs over every byte): the rules
    /// without literals that have neither an anchor nor rare windows of their own, or all the
    /// rules without literals when only their windows together are too common (`logalarm
    /// check` names them).
    every_byte_because: Vec<u32>,
    scan: Regex,
    exact: Regex,
    /// When `exact` has more than [`WHICH_CHUNK`] patterns: their trees, and (at the first
    /// line that needs them) automata of at most that many of them each.
    chunks: Option<(Vec<Hir>, OnceLock<Vec<Chunk>>)>,
    /// Rule index of each of the automata's patterns.
    ids: Vec<u32>,
    /// Whether its rules are alike for the alarms (see `RuleSet::alike`).
    alike: OnceLock<Alike>,
    /// When every rule here matches literals only and they are few, what each matches (in
    /// `ids`' order): a candidate line is confirmed by comparing them, not by the automaton.
    literal: Option<Vec<(u32, LiteralOnly)>>,
    /// When every rule here is `^literal`: those literals. A line starting with one is a
    /// candidate without a search (PERF: a storm of `^STORM` lines spent a fifth of the
    /// reader finding each line's `STORM` with memmem from the line before and its start
    /// again with memrchr).
    prefixes: Option<Vec<Vec<u8>>>,
}

/// How one automaton's rules (a group's, the DFA part's) decide a line's alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alike {
    /// Their alarms differ: every rule that matches is needed.
    No,
    /// The same alarms, and no rule has a confirmer: the automaton's first match decides.
    Plain,
    /// The same alarms, and some rules have confirmers: the first match confirmed decides.
    Confirmed,
}

/// Most patterns in one automaton asked for every pattern that matches a line (`--metrics`,
/// `replay`, alarms not alike). PERF: one automaton of ~1,000 patterns asked for all of them
/// builds a lazy-DFA state per combination of patterns still alive, thrashes its cache and
/// falls back to the PikeVM: grc's and multitail's 1,175 colouring regexes with `--metrics`
/// ran 70 times slower than without (94 s against 1.36 s per 64 MiB, 329 MiB of RSS); in chunks
/// of 16 (32 alike, 64 five times slower) 2.5 s against 23 s per 16 MiB, 37 MiB (PERF.md
/// "fortieth run").
const WHICH_CHUNK: usize = 16;

/// An automaton of at most [`WHICH_CHUNK`] of the DFA part's rules, all naming the same alarms
/// the same way (`RuleSet::decides`).
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) re: Regex,
    /// Rule index of each of its patterns.
    pub(super) ids: Vec<u32>,
}

impl DfaPart {
    /// The automata of at most [`WHICH_CHUNK`] patterns each, when `exact` has more: its rules
    /// taken in order within each kind of `decides` (the alarms a rule names, and whether it is
    /// a `not-log-alarm`), a chunk never mixing two kinds. `None` also when one cannot be built
    /// (then `exact` answers). PERF: a line asks a kind's chunks only until one of them
    /// confirms a rule, and no kind whose alarms the line has decided (grok's 300 patterns
    /// over two alarms ran 17 times slower than over one, where the whole part is alike).
    pub(super) fn chunks(&self, decides: &[(u64, bool)]) -> Option<&[Chunk]> {
        let (hirs, built) = self.chunks.as_ref()?;
        let built = built.get_or_init(|| {
            let kind = |i: usize| decides.get(self.ids[i] as usize).copied();
            let mut order: Vec<usize> = (0..hirs.len()).collect();
            order.sort_by_key(|&i| kind(i));
            let mut out = Vec::new();
            for same in order.chunk_by(|&a, &b| kind(a) == kind(b)) {
                for c in same.chunks(WHICH_CHUNK) {
                    let re = meta::Builder::new()
                        .configure(
                            base_config()
                                .match_kind(MatchKind::All)
                                .auto_prefilter(false),
                        )
                        .build_many_from_hir(&c.iter().map(|&i| &hirs[i]).collect::<Vec<_>>());
                    let Ok(re) = re else {
                        return Vec::new();
                    };
                    let ids = c.iter().map(|&i| self.ids[i]).collect();
                    out.push(Chunk { re, ids });
                }
            }
            out
        });
        (!built.is_empty()).then_some(built.as_slice())
    }

    /// Where the next candidate of `pre` (this part's prefilter) starts in `buf[pos..to]`.
    #[inline]
    fn pre_find(&self, pre: &Prefilter, buf: &[u8], pos: usize, to: usize) -> Option<usize> {
        let from = match &self.near {
            Some(lit) => match crate::litscan::find_literal_near(&buf[pos..to], lit) {
                Ok(at) => return Some(pos + at),
                Err(i) => pos + i,
            },
            None => pos,
        };
        pre.find(buf, Span::from(from..to)).map(|s| s.start)
    }
}

/// Most DFA-part rules confirmed by their literals (each compared on its own per candidate
/// line, where the automaton checks all at once).
const MAX_LITERAL_ONLY: usize = 4;

/// What a rule of literals only matches: a line holding one of `finders`' literals, or, for a
/// rule `^literal`, a line starting with it.
#[derive(Debug, Clone)]
pub(super) struct LiteralOnly {
    prefix: Option<Vec<u8>>,
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl LiteralOnly {
    fn new(lits: &[Vec<u8>], prefix: bool) -> LiteralOnly {
        LiteralOnly {
            prefix: prefix.then(|| lits.first().cloned()).flatten(),
            finders: lits
                .iter()
                .map(|l| memchr::memmem::Finder::new(l).into_owned())
                .collect(),
        }
    }

    /// Whether the rule matches `text` (a line without its terminator).
    #[inline]
    pub(super) fn matches(&self, text: &[u8]) -> bool {
        match &self.prefix {
            Some(p) => text.starts_with(p),
            None => self.holds(text),
        }
    }

    /// Whether `text` holds one of the literals. PERF: a line is short: looked at inline first
    /// (see `DfaPart::near`); not inlined, so that a `^literal` rule's check stays small.
    #[inline(never)]
    fn holds(&self, text: &[u8]) -> bool {
        self.finders.iter().any(
            |f| match crate::litscan::find_literal_near(text, f.needle()) {
                Ok(_) => true,
                Err(i) => text.len() >= i + f.needle().len() && f.find(&text[i..]).is_some(),
            },
        )
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
        RuleSet::with_cache(patterns, n_alarms, bufsize, None).map(|(s, _)| s)
    }

    /// [`RuleSet::new`], keeping what start-up learns of a large set's rules in the rules
    /// cache `cache` (a directory: see `cache`) and starting from it when it is there. Also
    /// returns why the cache could not be used or written, if so (a warning: the rules are
    /// compiled all the same).
    pub(crate) fn with_cache(
        patterns: &[(&str, Rule)],
        n_alarms: usize,
        bufsize: usize,
        cache: Option<&std::path::Path>,
    ) -> Result<(RuleSet, Option<String>), RuleError> {
        // PERF: literal-first. Rules with required literals are found by one hashed multi-literal
        // search (litscan) and each candidate line is confirmed only against the rules whose
        // literals it holds, one small automaton per group of them; the DFA part takes only the
        // rules without literals. rules100 in memory: see PERF.md ("literal-first").
        let texts: Vec<&str> = patterns.iter().map(|(p, _)| *p).collect();
        let cache = cache.filter(|_| patterns.len() >= cache::MIN_RULES);
        let mut note = None;
        let loaded = match cache.map(|dir| cache::load(dir, &texts)) {
            Some(Ok(records)) => records,
            Some(Err(why)) => {
                note = Some(format!("rules cache {why}"));
                None
            }
            None => None,
        };
        // PERF: with a rules cache record, the rules the literal search finds are not parsed
        // at start-up (Debian's 2,101 rules: see PERF.md "rules cache").
        let (hirs, records) = match loaded {
            Some(records) => (vec![None; patterns.len()], records),
            None => {
                let mut hirs = Vec::with_capacity(patterns.len());
                let mut records = Vec::with_capacity(patterns.len());
                for parsed in parse_all(patterns) {
                    let (h, r) = parsed?;
                    hirs.push(h);
                    records.push(r);
                }
                if let Some(dir) = cache {
                    if let Err(e) = cache::store(dir, &texts, &records) {
                        note = Some(format!(
                            "rules cache {}: not written: {e} (--rules-cache off stops trying)",
                            dir.display()
                        ));
                    }
                }
                (hirs, records)
            }
        };
        let (found, flags): (Vec<_>, Vec<_>) = records
            .into_iter()
            .map(|r| (r.lits, (r.plain || r.prefix, r.heavy, r.prefix)))
            .unzip();
        let fast = FastLiterals::of(&found);
        // PERF: asked once, on every core (it was asked twice on the calling thread, here and
        // for plan's warning: 8 M instructions of a cold start's serial part with Debian's 2,101
        // rules, PERF.md "twenty-ninth run").
        let never: Vec<bool> =
            crate::par::map(texts.len(), parallel_threads(texts.len()), 64, |i| {
                needs_a_newline(texts[i])
            });
        let mut b = Builder::for_rules(&found);
        for (i, ((lits, (plain, heavy, prefix)), h)) in
            found.into_iter().zip(flags).zip(hirs).enumerate()
        {
            let parsed = |h: Option<Hir>| match h {
                Some(h) => Ok(h),
                None => parse_regex(texts[i]).map_err(RuleError::of(i)),
            };
            // PERF: a rule every match of which holds a newline never matches a line (plan
            // warns of it): it takes no part in any search (Debian's set has five, fail2ban's
            // multi-line filters; one of them was a class-window scan over every byte).
            if never[i] {
                b.never_rule();
                continue;
            }
            let lits = lits.filter(|_| b.needles.len() + b.short.len() < MAX_NEEDLES);
            match lits {
                // PERF: a few rules with short literals beside many with long ones: their own
                // search (the long ones keep their stride) naming them for confirmation, not
                // the DFA part, which ran all of them on every line one named (Debian's 2,101
                // rules: 14 such rules, 30,484 lines per 64 MB confirmed in vain; PERF.md
                // "nineteenth run"). A rule its literals match whole stays in the DFA part,
                // which compares them without an automaton, unless they ignore case (the DFA
                // part's literal search does not: such a rule needed its class windows there,
                // sagan-rules' `(?i)CHMOD|DELE|STOR`, PERF.md "thirty-ninth run").
                Some((lits, ci)) if fast.takes(&lits) || (fast.has_long && (!plain || ci)) => {
                    let short = !fast.takes(&lits);
                    let h = if heavy { Some(parsed(h)?) } else { h };
                    let rule = LiteralRule {
                        pattern: texts[i],
                        hir: h,
                        plain,
                        heavy,
                        prefix: prefix.then(|| lits.first().cloned()).flatten(),
                    };
                    b.literal_rule(i, rule, lits, ci, short)?
                }
                other => {
                    let literal = match &other {
                        Some((l, false)) if plain => Some(LiteralOnly::new(l, prefix)),
                        _ => None,
                    };
                    b.dfa_rule(i, parsed(h)?, other, literal)
                }
            }
        }
        // PERF: with a large set, the literal searches are built on another thread while this
        // one compiles the DFA part (Debian's 2,101 rules: ~4 ms each, one after the other on
        // one core; PERF.md "twenty-ninth run"). A thread that cannot start costs only time.
        let input = std::sync::Mutex::new(Some((
            std::mem::take(&mut b.needles),
            std::mem::take(&mut b.short),
        )));
        let scans = || {
            let taken = input.lock().ok().and_then(|mut i| i.take());
            taken.map(|(needles, short)| (LitScan::new(needles), LitScan::new(short)))
        };
        let (searches, dfa) = std::thread::scope(|s| {
            let other = (parallel_threads(texts.len()) > 1)
                .then(|| crate::par::spawn_beside(s, scans).ok())
                .flatten();
            let dfa = b.dfa_part();
            let searches = match other.map(|h| h.join()) {
                Some(Ok(built)) => built,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => None,
            };
            (searches, dfa)
        });
        let (lits, short) = searches.or_else(scans).unwrap_or((None, None));
        let dfa = dfa?;
        for (g, parsed) in b.groups.iter_mut().zip(std::mem::take(&mut b.parsed)) {
            if let Some(hirs) = parsed {
                let _ = g.hirs.set(hirs);
            }
        }
        let bits = |r: &Rule| r.alarms.iter().fold(0u64, |m, &a| m | 1 << (a % 64));
        let decides: Vec<(u64, bool)> = if (1..=64).contains(&n_alarms) {
            patterns.iter().map(|(_, r)| (bits(r), r.negate)).collect()
        } else {
            Vec::new()
        };
        let ruled = decides.iter().fold(0, |m, (b, _)| m | b);
        let negated = decides.iter().filter(|d| d.1).fold(0, |m, (b, _)| m | b);
        let set = RuleSet(Arc::new(Compiled {
            lits,
            placement: Default::default(),
            short,
            groups: b.groups,
            group_of: b.group_of,
            checks: b.checks,
            dfa,
            rules: patterns.iter().map(|(_, r)| r.clone()).collect(),
            n_alarms,
            bufsize: bufsize.max(1),
            end_sensitive: b.end_sensitive,
            confirm: Vec::new(),
            decides,
            ruled,
            unnegated: !negated,
            never: never
                .iter()
                .enumerate()
                .filter_map(|(i, &n)| n.then_some(i))
                .collect(),
        }));
        Ok((set, note))
    }

    /// Rules whose patterns are relaxed forms: rule `i`'s lines must also match `confirm[i]`
    /// (PCRE, on the line as every rule sees it: without its terminator, cut to the bufsize).
    /// Only before the set is shared (a fresh set): returns false otherwise.
    pub(crate) fn set_confirmers(&mut self, confirm: Vec<Option<Confirmer>>) -> bool {
        let Some(c) = Arc::get_mut(&mut self.0) else {
            return false;
        };
        c.confirm = if confirm.iter().any(Option::is_some) {
            confirm
        } else {
            Vec::new()
        };
        true
    }

    /// Whether `rules` (a group's, the DFA part's) are interchangeable for a line's alarms: the
    /// same alarms, all positive or all `not-log-alarm`; and whether any is confirmed by PCRE
    /// or a field parser.
    fn alike(&self, rules: &[u32]) -> Alike {
        let mut rules = rules.iter().map(|&r| r as usize);
        let Some(first) = rules.next() else {
            return Alike::No;
        };
        let same = |r: usize| self.decides.get(r) == self.decides.get(first);
        if self.decides.is_empty() || !rules.clone().all(same) {
            return Alike::No;
        }
        let plain = |r: usize| self.confirm.get(r).is_none_or(Option::is_none);
        if plain(first) && rules.all(plain) {
            Alike::Plain
        } else {
            Alike::Confirmed
        }
    }

    /// How the candidate lines of the rules without long literals (the DFA part) are found, for
    /// `logalarm check`: their count, the searches that find them, and, when none covers them
    /// all, the rules that send the automaton over every byte (indices into the rules). None
    /// when every rule has long literals.
    pub(crate) fn candidate_search(&self) -> Option<CandidateSearch<'_>> {
        let d = self.dfa.as_ref()?;
        let mut by = Vec::new();
        if d.pre.is_some() {
            by.push("a search for their short literals");
        }
        if d.classes.is_some() {
            by.push("a search for rare windows of byte classes (the automaton over every byte instead if they prove common in the stream)");
        }
        if d.ends.is_some() {
            by.push("an automaton anchored at each line's start or end");
        }
        let every = d.pre.is_none() && d.classes.is_none() && d.ends.is_none();
        Some((
            d.ids.len(),
            by,
            every.then_some(d.every_byte_because.as_slice()),
        ))
    }

    /// Whether rule `r`'s match on the line `text` stands (its PCRE confirmer, if any, agrees;
    /// a PCRE error, such as its match limit, is no match, as in uWSGI).
    #[inline]
    pub(crate) fn confirmed(&self, r: usize, text: &[u8]) -> bool {
        match self.confirm.get(r) {
            Some(Some(Confirmer::Pcre(re))) => re.is_match(text),
            Some(Some(Confirmer::Fields(f))) => f.holds(text),
            _ => true,
        }
    }

    /// Probe rules for the lazy DFA's cache thrash (see `cost`): every rule when `all`, else
    /// only the suspicious ones (start-up). Returns (rule index, engine, cost) per probed rule.
    pub(crate) fn costs(patterns: &[&str], all: bool) -> Vec<(usize, &'static str, cost::Cost)> {
        let mut out = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            let Ok(h) = parse_regex(p) else {
                continue;
            };
            if !all && !cost::suspicious(&h) {
                continue;
            }
            let literal = rule_needles(&h).is_some_and(|(n, _)| {
                !n.is_empty() && n.iter().all(|l| l.len() >= FAST_NEEDLE_LEN)
            });
            let windows =
                || windows::rarest_windows(&h).is_some_and(|(_, p)| p <= MAX_WINDOW_CHANCE);
            let short = || rule_needles(&h).is_some_and(|(n, _)| !n.is_empty());
            let side = || line_ends::side(&syntax::for_existence(&h));
            let walked = || chain::Chain::of(&syntax::for_existence(&h)).is_some();
            let engine = if needs_a_newline(p) {
                "none (every match holds a newline: it never matches a line and is never run)"
            } else if literal && walked() {
                "literal-first (a line without its literal is never confirmed), then walked along the line (no automaton, unless a rule sharing its literal needs one)"
            } else if literal {
                "literal-first (a line without its literal is never confirmed)"
            } else if short() && walked() {
                "short literals (a line without one of its literals is never confirmed), then walked along the line (no automaton, unless a rule sharing its literal needs one), when the other rules without long literals have rare class windows, else automaton (every line)"
            } else if short() {
                "short literals (a line without one of its literals is never confirmed) when the other rules without long literals have rare class windows, else automaton (every line)"
            } else if let Some(side) = side() {
                match side {
                    line_ends::Side::Start => "class windows when those of the rules without literals are rare together, else an automaton anchored at each line's start (a few bytes a line)",
                    line_ends::Side::End => "class windows when those of the rules without literals are rare together, else an automaton anchored at each line's end, run backwards (a few bytes a line)",
                }
            } else if windows() {
                "class windows when the rules without literals are few (a line without its run of byte classes is never confirmed), else automaton (every line)"
            } else {
                "automaton (every line)"
            };
            let Ok(regex) = meta::Builder::new()
                .configure(base_config())
                .build_from_hir(&h)
            else {
                continue;
            };
            out.push((i, engine, cost::probe(&h, &regex, all)));
        }
        out
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

    /// Whether rule `i` can never match a line: every match of it holds a newline, and each
    /// line is matched without its terminator.
    pub fn never_matches(&self, i: usize) -> bool {
        self.never.binary_search(&i).is_ok()
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
    pub fn matcher(&self) -> Matcher {
        let words = self.rules.len().div_ceil(64);
        Matcher {
            set: self.clone(),
            group_caches: self.groups.iter().map(|_| None).collect(),
            group_set: PatternSet::new(MAX_GROUP),
            groups_run: Vec::with_capacity(MAX_GROUP),
            // Made at first use: an input that stays idle (most stderr pipes) costs no cache.
            scan_cache: None,
            exact_cache: None,
            ends_cache: Default::default(),
            shared: None,
            helpers: None,
            dfa_hit: false,
            windows: Default::default(),
            patset: PatternSet::new(self.dfa.as_ref().map_or(0, |d| d.ids.len())),
            chunk_caches: Vec::new(),
            chunk_set: None,
            lit_hits: Vec::new(),
            short_hits: Vec::new(),
            merged_hits: Vec::new(),
            named: Vec::with_capacity(self.rules.len().min(64)),
            seen: vec![0; words],
            pos_bits: vec![0; self.n_alarms.div_ceil(64)],
            neg_bits: vec![0; self.n_alarms.div_ceil(64)],
            hits: Vec::with_capacity(self.n_alarms),
            rule_hits: vec![0; self.rules.len()],
            every_rule: false,
            recording: None,
            cost: None,
            placed: None,
            placed_generation: 0,
        }
    }
}

/// Which rules' literals the literal search takes. Literals shorter than [`FAST_NEEDLE_LEN`]
/// shrink the search's stride for all: a few such rules go to the DFA part (whose regex finds
/// them with its own prefilter), many stay. 6-byte literals join the search at full stride when
/// few (litscan's overhang windows).
#[derive(Debug)]
struct FastLiterals {
    six_fit: bool,
    keep_short: bool,
    /// Some rule's literals are long (the literal search then exists without the short ones).
    has_long: bool,
}

impl FastLiterals {
    fn of(found: &[Option<RuleLiterals>]) -> FastLiterals {
        let six_keys: usize = found
            .iter()
            .flatten()
            .filter(|(l, _)| min_len(l) == SEARCH_NEEDLE_LEN)
            .flat_map(|(l, ci)| {
                l.iter()
                    .filter(|x| x.len() == SEARCH_NEEDLE_LEN)
                    .map(|x| crate::litscan::overhang_keys(x, *ci))
            })
            .sum();
        let mut f = FastLiterals {
            six_fit: six_keys <= crate::litscan::MAX_OVERHANG_KEYS,
            keep_short: false,
            has_long: false,
        };
        let with = found.iter().flatten().count();
        let short = found.iter().flatten().filter(|(l, _)| !f.long(l)).count();
        f.has_long = short < with;
        // PERF: many rules with short literals keep them in the one search (its stride then
        // 1 or 2 for all), unless those literals alone fit nibble tables and all together do
        // not: a second pass of nibble tables (~5 GB/s) costs less than the stride lost (the
        // "mixed" bench set: four of 28 rules with short literals, ` E ` and `node-\d`; its
        // literal search alone 1.0-1.1 GB/s at stride 1, 2.5 GB/s at stride 4 beside 5-6 GB/s
        // for the four: PERF.md "twenty-fifth run").
        f.keep_short =
            short > (with / 20).max(2) && !(f.has_long && f.short_take_nibble_tables(found));
        f
    }

    /// Whether the short rules' literals (see [`FastLiterals::long`]) fit a search of nibble
    /// tables of their own while all the literals together do not.
    fn short_take_nibble_tables(&self, found: &[Option<RuleLiterals>]) -> bool {
        let needles = |short_only: bool| -> Vec<Needle> {
            let rules = found.iter().flatten();
            let rules = rules.filter(|(l, _)| !short_only || !self.long(l));
            rules
                .flat_map(|(l, ci)| {
                    l.iter().map(|b| Needle {
                        bytes: b.clone().into(),
                        ci: *ci,
                        rule: 0,
                    })
                })
                .collect()
        };
        crate::litscan::takes_nibble_tables(&needles(true))
            && !crate::litscan::takes_nibble_tables(&needles(false))
    }

    fn long(&self, l: &[Vec<u8>]) -> bool {
        min_len(l) >= FAST_NEEDLE_LEN || (min_len(l) == SEARCH_NEEDLE_LEN && self.six_fit)
    }

    fn takes(&self, l: &[Vec<u8>]) -> bool {
        self.keep_short || self.long(l)
    }
}

/// The parts of a [`RuleSet`] while its rules are placed one by one.
#[derive(Debug, Default)]
struct Builder {
    needles: Vec<Needle>,
    /// The needles of the short literal search (`Compiled::short`).
    short: Vec<Needle>,
    groups: Vec<Group>,
    group_of: Vec<u32>,
    checks: Vec<Check>,
    /// A literal (and whether compared ignoring case) → the group that first took it.
    group_by_literal: std::collections::HashMap<(Vec<u8>, bool), u32>,
    /// The DFA part: its rules as written, rewritten for the scan, and their indexes.
    dfa_exact: Vec<Hir>,
    dfa_scan: Vec<Hir>,
    ids: Vec<u32>,
    end_sensitive: bool,
    /// The case-sensitive literals of the DFA part's rules that have them.
    short_needles: Vec<Vec<u8>>,
    /// The DFA part's rules without case-sensitive literals (indexes into `dfa_exact`).
    dfa_free: Vec<usize>,
    /// Per DFA-part rule, what it matches when that is literals only (see [`LiteralOnly`]).
    dfa_literal: Vec<Option<LiteralOnly>>,
    /// Per group, its rules' syntax trees when start-up parsed every one of them.
    // PERF: `None` as soon as one rule has none (a vector a group, kept to the end, was ~270
    // KB of fresh memory for Debian's 2,101 rules before the first line out).
    parsed: Vec<Option<Vec<Hir>>>,
}

/// A rule the literal search finds, as the builder places it.
struct LiteralRule<'a> {
    pattern: &'a str,
    /// Its syntax tree, when start-up parsed it (always when `heavy`).
    hir: Option<Hir>,
    plain: bool,
    heavy: bool,
    /// The literal a plain rule's match starts the line with (`gate::is_prefix`).
    prefix: Option<Vec<u8>>,
}

impl Builder {
    /// A builder with room for rules whose literals are `found`.
    // PERF: room made once, not by doubling (Debian's 2,101 rules: the groups, checks,
    // needles and the literal map grown by doubling touched ~1 MB of fresh memory more, ~250
    // page faults of ~3 µs on this VM, on the serial part of a cold start).
    fn for_rules(found: &[Option<RuleLiterals>]) -> Builder {
        let n = found.len();
        let literals = found.iter().flatten().map(|(l, _)| l.len()).sum();
        Builder {
            needles: Vec::with_capacity(literals),
            groups: Vec::with_capacity(n),
            group_of: Vec::with_capacity(n),
            checks: Vec::with_capacity(n),
            group_by_literal: std::collections::HashMap::with_capacity(literals),
            parsed: Vec::with_capacity(n),
            ..Builder::default()
        }
    }

    /// Rule `i` is found by the literal search through `lits`.
    fn literal_rule(
        &mut self,
        i: usize,
        rule: LiteralRule<'_>,
        lits: Vec<Vec<u8>>,
        ci: bool,
        short: bool,
    ) -> Result<(), RuleError> {
        // A large rule is compiled now, so that a size error stops start-up like any regex
        // error (groups are compiled at their first candidate line).
        if let (true, Some(h)) = (rule.heavy, &rule.hir) {
            group_regex(std::slice::from_ref(h)).map_err(RuleError::of(i))?;
        }
        // PERF: rules sharing a literal are confirmed by one automaton run (the 1,000-rule set,
        // each rule ten times varied: see PERF.md "groups").
        let shared = lits
            .iter()
            .filter_map(|l| self.group_by_literal.get(&(l.clone(), ci)).copied())
            .find(|&g| self.groups[g as usize].rules.len() < MAX_GROUP);
        let g = shared.unwrap_or_else(|| {
            self.groups.push(Group {
                rules: Vec::new(),
                patterns: Vec::new(),
                hirs: OnceLock::new(),
                re: OnceLock::new(),
                alike: OnceLock::new(),
                chains: OnceLock::new(),
            });
            self.parsed.push(Some(Vec::new()));
            (self.groups.len() - 1) as u32
        });
        // PERF: a candidate line is checked for the rule's other literals before its automaton
        // runs, and a plain literal rule needs no automaton (rules100: see PERF.md "gates").
        self.checks.push(Check {
            plain: rule.plain,
            prefix: rule.prefix.map(Vec::into_boxed_slice),
            gates: OnceLock::new(),
            lead: OnceLock::new(),
        });
        self.groups[g as usize].rules.push(i as u32);
        self.groups[g as usize].patterns.push(rule.pattern.into());
        if let Some(slot) = self.parsed.get_mut(g as usize) {
            match (slot.as_mut(), rule.hir) {
                (Some(trees), Some(h)) => trees.push(h),
                (_, None) => *slot = None,
                (None, Some(_)) => {}
            }
        }
        self.group_of.push(g);
        for l in &lits {
            self.group_by_literal.entry((l.clone(), ci)).or_insert(g);
        }
        let needles = if short {
            &mut self.short
        } else {
            &mut self.needles
        };
        needles.extend(lits.into_iter().map(|l| Needle {
            bytes: l.into(),
            ci,
            rule: i as u32,
        }));
        Ok(())
    }

    /// Rule `i` goes to the DFA part (`lits`: its literals, if it has any).
    fn dfa_rule(
        &mut self,
        i: usize,
        h: Hir,
        lits: Option<RuleLiterals>,
        literal: Option<LiteralOnly>,
    ) {
        self.dfa_literal.push(literal);
        match lits {
            Some((l, false)) => self.short_needles.extend(l),
            _ => self.dfa_free.push(self.dfa_exact.len()),
        }
        self.end_sensitive |= looks_ahead(&h);
        self.dfa_scan.push(for_scan(syntax::for_existence(&h)));
        self.dfa_exact.push(h);
        self.ids.push(i as u32);
        self.group_of.push(NO_GROUP);
        self.checks.push(Check::default());
    }

    /// The next rule can never match a line: it is in no search and no group.
    fn never_rule(&mut self) {
        self.group_of.push(NO_GROUP);
        self.checks.push(Check::default());
    }

    /// Compile the DFA part, if it has rules.
    fn dfa_part(&mut self) -> Result<Option<DfaPart>, RuleError> {
        if self.ids.is_empty() {
            return Ok(None);
        }
        // PERF: the lazy DFA's cache grows with the rule count (8 MiB + 32 KiB a rule, at most
        // 40 MiB): 1,000 rules thrash an 8 MiB cache (5.6 MB/s; 40 MiB ~20 MB/s).
        let cache = ((8 << 20) + self.ids.len() * (32 << 10)).min(40 << 20);
        // PERF: no automatic prefilter: for a rule starting with a class (`[0-9]{1,3}\.…`)
        // meta picks Teddy over its bytes, which are everywhere in logs (the IP:port rule in
        // memory: 514-599 MB/s with it, 792-850 without); literals and class windows are
        // searched by `pre` and `classes` below when they pay.
        let build = |hirs: &[Hir], kind: MatchKind| {
            meta::Builder::new()
                .configure(
                    base_config()
                        .match_kind(kind)
                        .hybrid_cache_capacity(cache)
                        .auto_prefilter(false),
                )
                .build_many_from_hir(hirs)
                .map_err(|e| RuleError {
                    rule: None,
                    error: RegexError(format!("cannot compile the rules: {e}")),
                })
        };
        // PERF: Teddy over the short literals finds the candidate lines of the rules that
        // have them: meta's own prefilter for `\[(crit|alert|emerg)\]` was memchr of `[`
        // (rules100 on one core: 851-930 MB/s with the rule, 931-1011 without it). The rules
        // without literals are found by their class windows beside it, when they have rare
        // ones; otherwise the automaton runs over every byte for all of them (Debian's 2,101
        // rules leave 8 rules with short literals and 8 without any here).
        let needles = std::mem::take(&mut self.short_needles);
        let near = match &needles[..] {
            [one] if !one.is_empty() => Some(one.clone().into_boxed_slice()),
            _ => None,
        };
        let mut pre = (!needles.is_empty())
            .then(|| Prefilter::new(MatchKind::LeftmostFirst, &needles))
            .flatten();
        let short_rules = self.ids.len() - self.dfa_free.len();
        let mut needs_classes = !self.dfa_free.is_empty();
        let mut classes = None;
        let mut ends = None;
        // Lines are what these automata tell: whether each rule matches one (where it matches
        // is the line's business), so the parts at a rule's ends that match the empty string
        // anywhere are left out of both.
        let existence: Vec<Hir> = self.dfa_exact.iter().map(syntax::for_existence).collect();
        let mut window_lead = None;
        if needs_classes && (short_rules == 0 || pre.is_some()) {
            let free: Vec<&Hir> = self.dfa_free.iter().map(|&i| &self.dfa_exact[i]).collect();
            (classes, window_lead) = match class_scan_placed(&free) {
                // Every rule here is found by its windows alone.
                Some((scan, lead)) => (Some(scan), lead.filter(|_| short_rules == 0)),
                None => (None, None),
            };
            if classes.is_none() {
                // PERF: the rules anchored at a line's start or end are checked there; the
                // others need rare windows (sagan-rules' `^apache$|^mysql$|…` and
                // ` [0-9]{3,4}: $` sent the automaton over every byte: PERF.md "thirty-ninth
                // run").
                let mut sided: Vec<(&Hir, line_ends::Side)> = Vec::new();
                let mut rest: Vec<&Hir> = Vec::new();
                for &i in &self.dfa_free {
                    match line_ends::side(&existence[i]) {
                        Some(side) => sided.push((&existence[i], side)),
                        None => rest.push(&self.dfa_exact[i]),
                    }
                }
                let rest_classes = if rest.is_empty() {
                    None
                } else {
                    class_scan(&rest)
                };
                if !sided.is_empty() && (rest.is_empty() || rest_classes.is_some()) {
                    ends = line_ends::LineEnds::new(&sided);
                    if ends.is_some() {
                        classes = rest_classes;
                        needs_classes = !rest.is_empty();
                    }
                }
            }
        }
        if needs_classes && classes.is_none() {
            pre = None;
        }
        let every_byte_because = if pre.is_none() && classes.is_none() && ends.is_none() {
            let own = |i: usize| {
                let h = &self.dfa_exact[i];
                line_ends::side(&existence[i]).is_none()
                    && windows::rarest_windows(h).is_none_or(|(_, p)| p > MAX_WINDOW_CHANCE)
            };
            let blamed: Vec<u32> = self
                .dfa_free
                .iter()
                .filter(|&&i| own(i))
                .map(|&i| self.ids[i])
                .collect();
            if blamed.is_empty() {
                self.dfa_free.iter().map(|&i| self.ids[i]).collect()
            } else {
                blamed
            }
        } else {
            Vec::new()
        };
        let literal = literal_only(&self.ids, std::mem::take(&mut self.dfa_literal));
        let prefixes = literal.as_ref().and_then(|l| {
            l.iter()
                .map(|(_, l)| l.prefix.clone())
                .collect::<Option<Vec<_>>>()
        });
        Ok(Some(DfaPart {
            window_lead: window_lead.filter(|_| pre.is_none() && ends.is_none()),
            pre,
            near,
            classes,
            needs_classes,
            ends,
            every_byte_because,
            scan: build(&self.dfa_scan, MatchKind::LeftmostFirst)?,
            exact: build(&existence, MatchKind::All)?,
            chunks: (existence.len() > WHICH_CHUNK).then(|| (existence, OnceLock::new())),
            literal,
            prefixes,
            ids: std::mem::take(&mut self.ids),
            alike: OnceLock::new(),
        }))
    }
}

/// The DFA part's rules' literals when every one of its (at most [`MAX_LITERAL_ONLY`]) rules
/// matches literals only. PERF: a storm of `^STORM` lines spent 9 % of the run in the
/// automaton confirming what `starts_with` says (PERF.md "fourteenth run").
fn literal_only(ids: &[u32], literal: Vec<Option<LiteralOnly>>) -> Option<Vec<(u32, LiteralOnly)>> {
    if ids.len() > MAX_LITERAL_ONLY || literal.len() != ids.len() {
        return None;
    }
    ids.iter()
        .zip(literal)
        .map(|(&r, l)| l.map(|l| (r, l)))
        .collect()
}

/// The summed chance of the class windows at a position of log text above which the
/// automaton over every byte is cheaper than confirming the lines they name (about one line in
/// two of 128 bytes).
const MAX_WINDOW_CHANCE: f64 = 1.0 / 256.0;

/// The class-window search of the DFA part's rules, when each has windows, they are few in all
/// and rare together (see [`MAX_WINDOW_CHANCE`]).
fn class_scan(rules: &[&Hir]) -> Option<ClassScan> {
    class_scan_placed(rules).map(|(scan, _)| scan)
}

/// [`class_scan`], and how far after the start of every match of one of `rules` one of its
/// windows surely starts, when that is known for each (`windows::window_place`).
fn class_scan_placed(rules: &[&Hir]) -> Option<(ClassScan, Option<usize>)> {
    if rules.len() > MAX_WINDOWS {
        return None;
    }
    let mut windows = Vec::new();
    let mut sum = 0.0;
    let mut lead = Some(0);
    for &h in rules {
        let (w, p) = windows::rarest_windows(h)?;
        sum += p;
        lead = lead
            .zip(windows::window_place(h, &w))
            .map(|(a, b)| a.max(b));
        // One rule's branches may share a window (`\s+(nc|ncat)\s+`: `\snc` twice).
        for w in w {
            if !windows.contains(&w) {
                windows.push(w);
            }
        }
    }
    let scan = (sum <= MAX_WINDOW_CHANCE).then(|| ClassScan::new(&windows))??;
    Some((scan, lead))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rules: &[(&str, &[u32], bool)], bufsize: usize) -> RuleSet {
        RuleSet::from_triples(rules, 8, bufsize).unwrap()
    }

    /// The set of `rules` where rule i raises alarm i.
    fn one_alarm_each(rules: &[&str]) -> RuleSet {
        one_alarm_each_cut(rules, 8192)
    }

    /// [`one_alarm_each`] with lines cut to `bufsize`.
    fn one_alarm_each_cut(rules: &[&str], bufsize: usize) -> RuleSet {
        let alarms: Vec<[u32; 1]> = (0..rules.len() as u32).map(|i| [i]).collect();
        let triples: Vec<(&str, &[u32], bool)> = rules
            .iter()
            .zip(&alarms)
            .map(|(r, a)| (*r, &a[..], false))
            .collect();
        set(&triples, bufsize)
    }

    fn hits(s: &RuleSet, buf: &[u8]) -> Vec<(String, Vec<u32>)> {
        hits_counted(s, buf, false).0
    }

    /// Each raising line with its alarms, in order, and the matcher (for its per-rule counts),
    /// with every rule counted or not.
    fn hits_counted(s: &RuleSet, buf: &[u8], every: bool) -> (Vec<(String, Vec<u32>)>, Matcher) {
        let mut m = s.matcher();
        if every {
            m.count_every_rule();
        }
        let mut out = Vec::new();
        m.scan_lines(buf, &mut |l, a| {
            out.push((String::from_utf8_lossy(l).into_owned(), a.to_vec()))
        });
        (out, m)
    }

    /// Each raising line's alarms, in order, and the matcher (see [`hits_counted`]).
    fn alarms_counted(s: &RuleSet, buf: &[u8], every: bool) -> (Vec<Vec<u32>>, Matcher) {
        let (hits, m) = hits_counted(s, buf, every);
        (hits.into_iter().map(|(_, a)| a).collect(), m)
    }

    /// A rule ignoring case throughout takes its literals from the rule keeping case,
    /// lower-cased and compared ignoring case; its tree is parsed only when kept; and the
    /// rules match every case variant of their lines, as the automaton of each rule does.
    #[test]
    fn rules_ignoring_case_throughout_take_the_literals_of_the_rule_keeping_case() {
        let record = |p: &str| {
            let Some(Ok((tree, r))) = parse_ignoring_case(p) else {
                panic!("{p}: not taken as a rule ignoring case throughout");
            };
            (tree.is_some(), r.plain, r.heavy, r.lits)
        };
        let lits = |v: &[&str]| Some((v.iter().map(|l| l.as_bytes().to_vec()).collect(), true));
        assert_eq!(
            record("(?i)Connection REFUSED"),
            (false, true, false, lits(&["connection refused"]))
        );
        assert_eq!(
            record("(?i)kernel: Oversized packet [0-9]+ from"),
            (false, false, false, lits(&["kernel: oversized packet "]))
        );
        // Case variants of the rule keeping case are one literal ignoring it.
        assert_eq!(
            record("(?i)(Disk FULL|disk full) on /"),
            (false, false, false, lits(&["disk full on /"]))
        );
        // Short literals: the tree is kept for the DFA part.
        assert_eq!(record("(?is)abc.d"), (true, false, false, lits(&["abc"])));
        // Heavy: weighed on the tree ignoring case, which is kept.
        let heavy = record("(?i)(abcdefgh){300} cpu throttled");
        assert!(heavy.0 && heavy.2);
        for p in [
            "abc",
            "(?-i)abc",
            "(?i)ab(?-i)cdefgh",
            "(?iu)kelvin",
            "(?i:abcdefgh)",
        ] {
            assert!(parse_ignoring_case(p).is_none(), "{p}");
        }
        let kept = |p: &str| syntax::case_kept(p);
        assert_eq!(kept("(?i)a(?:b)c").as_deref(), Some("a(?:b)c"));
        assert_eq!(kept("(?sxi)a(?P<n>b)").as_deref(), Some("(?sx)a(?P<n>b)"));
        assert_eq!(kept("(?i)a\\(?s)b"), None);
        assert_eq!(kept("(?i"), None);

        let rules = [
            "(?i)connection refused by [0-9.]+",
            "(?i)Disk FULL",
            "(?is)out of memory.*killed",
            "(?i)(SEGFAULT|general protection) at",
        ];
        let s = one_alarm_each(&rules);
        let lines = [
            "Connection refused by 10.0.0.1",
            "CONNECTION REFUSED BY 1.2.3.4 now",
            "connection Refused by x",
            "disk full",
            "the DISK Full here",
            "Out Of Memory: process 12 KILLED",
            "out of memory",
            "segfault at 0",
            "General Protection at ip",
            "general protection",
        ];
        let bytes = regex_automata::util::syntax::Config::new()
            .unicode(false)
            .utf8(false);
        let re: Vec<regex_automata::meta::Regex> = rules
            .iter()
            .filter_map(|r| meta::Builder::new().syntax(bytes).build(r).ok())
            .collect();
        assert_eq!(re.len(), rules.len());
        let mut buf = Vec::new();
        let mut want = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
            let a: Vec<u32> = (0..rules.len() as u32)
                .filter(|&i| re[i as usize].is_match(l.as_bytes()))
                .collect();
            if !a.is_empty() {
                want.push((format!("{l}\n"), a));
            }
        }
        assert_eq!(want.len(), 7);
        assert_eq!(hits(&s, &buf), want);
    }

    /// Rules that can only match across a newline are found (and only those): each flagged
    /// one matches no line of a text where every other one matches some line.
    #[test]
    fn rules_that_need_a_newline_are_found() {
        let cases: &[(&str, bool)] = &[
            (r"a\nb", true),
            (r"a\x0ab", true),
            (r"a\x0Ab", true),
            ("a\nb", true), // a newline byte in the rule itself
            (r"a\x{0a}b", true),
            (r"a\cJb", true),
            (r"a[\n]b", true),
            (r".*\nWARNING: x$", true),
            (r"(a\n|b\x0a)", true),
            (r"(a\n)+b", true),
            (r"(?i)A\NB", false), // `\N` is "not a newline"
            (r"(a\n|b)", false),
            (r"(a\n)?b", false),
            (r"(a\n)*c", false),
            (r"a[^\n]b", false),
            (r"a\s*b", false),
            (r"a\x0bb", false),
            (r"a\x{0b}b", false),
            (r"x\x{62}a", false),
        ];
        let text = b"a\x0bb\nab\naxb\nc\nb\nxba\n";
        for &(p, dead) in cases {
            // As the plan asks: of the pattern the automaton runs (PCRE's `\cJ` and `\N`
            // translated).
            let t = pcre::translate(p).unwrap();
            assert_eq!(needs_a_newline(&t.pattern), dead, "{p}: {t:?}");
            let s = RuleSet::from_triples(&[(&t.pattern, &[0][..], false)], 8, 8192).unwrap();
            assert_eq!(hits(&s, text).is_empty(), dead, "{p}");
        }
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

    /// Once a line has decided an alarm, rules naming only decided alarms are not confirmed:
    /// the alarms are the same, a `not-log-alarm` rule still cancels, and with
    /// `count_every_rule` every matching rule is counted.
    #[test]
    fn rules_of_decided_alarms_are_skipped_unless_every_rule_is_counted() {
        let s = set(
            &[
                ("disk is full", &[0], false),
                (r"disk is \w+", &[0], false),
                ("is full", &[0, 1], false),
                ("(?i)DISK IS FULL", &[1], true),
                ("tank is empty", &[2], false),
            ],
            8192,
        );
        let buf = b"disk is full\ntank is full\ntank is empty\n";
        let want = vec![
            ("disk is full\n".to_string(), vec![0]),
            ("tank is full\n".to_string(), vec![0, 1]),
            ("tank is empty\n".to_string(), vec![2]),
        ];
        for every in [false, true] {
            let (got, m) = hits_counted(&s, buf, every);
            assert_eq!(got, want, "every rule counted: {every}");
            let first_line: u64 = m.rule_hits()[..4].iter().sum::<u64>() - 1;
            if every {
                assert_eq!(m.rule_hits(), &[1, 1, 2, 1, 1][..]);
            } else {
                // The first two rules name only alarm 0: whichever is confirmed first decides
                // it, the other is not confirmed.
                assert!(first_line < 4, "{:?}", m.rule_hits());
            }
        }
        // Rules naming no alarm of a set of none (the library allows it): nothing raised.
        let none = RuleSet::from_triples(
            &[("disk is full", &[], false), ("is full", &[], false)],
            0,
            8192,
        );
        let mut m = none.unwrap().matcher();
        m.scan_lines(buf, &mut |l, a| panic!("{l:?} raised {a:?}"));
    }

    /// A group of rules sharing a literal (one automaton) stops at its first match only when
    /// its rules are alike for the alarms; otherwise every rule that matches is found.
    #[test]
    fn a_group_stops_at_its_first_match_only_when_its_rules_are_alike() {
        let buf = b"x connect from 10.1 y\nconnect from hostA\nconnect from zed\n";
        let mixed = set(
            &[
                (r"connect from \d+\.\d+", &[0], false),
                (r"connect from \w+", &[0], false),
                (r"connect from (\w+)$", &[1], false),
            ],
            8192,
        );
        let alike = set(
            &[
                (r"connect from \d+\.\d+", &[0], false),
                (r"connect from \w+", &[0], false),
                (r"connect from (\w+)$", &[0], false),
            ],
            8192,
        );
        let one = |a: u32| vec![a];
        let want_mixed = vec![one(0), vec![0, 1], vec![0, 1]];
        let want_alike = vec![one(0), one(0), one(0)];
        for (s, want) in [(&mixed, want_mixed), (&alike, want_alike)] {
            for every in [false, true] {
                let (got, m) = alarms_counted(s, buf, every);
                assert_eq!(got, want, "every rule counted: {every}");
                if every {
                    assert_eq!(m.rule_hits(), &[1, 3, 2][..]);
                }
            }
        }
    }

    /// More than 16 rules without literals over several alarms (a `not-log-alarm` among them)
    /// are asked in chunks of one kind each, a kind skipped once the line has decided its
    /// alarms: the alarms are those of asking every rule.
    #[test]
    fn the_dfa_part_in_chunks_of_one_kind_raises_what_every_rule_raises() {
        let zero: Vec<String> = (1..=12).map(|k| format!(r"\d[^\w\s]{{{k}}}\w")).collect();
        let one: Vec<String> = (2..=9).map(|k| format!(r"[A-Z]{{{k}}}\d")).collect();
        let mut rules: Vec<(&str, &[u32], bool)> = Vec::new();
        // Interleaved, so that the chunks regroup them.
        for (i, r) in zero.iter().enumerate() {
            rules.push((r, &[0], false));
            if let Some(r) = one.get(i) {
                rules.push((r, &[1, 2], false));
            }
        }
        rules.push((r"\d{3}[^\w\s]", &[0], true));
        rules.push((r"[a-z]{4}[^\w\s]\d", &[2], false));
        let s = set(&rules, 8192);
        assert!(s.lits.is_none() && s.short.is_none(), "all in the DFA part");
        let buf = b"1#a\nAB1\n1#a AB1\n123# 1#a\n123#\nx\nABCDEFGH9 1##b\nabcd#1 AB1\nabcd#1\n";
        let (every, _) = alarms_counted(&s, buf, true);
        let (skipping, _) = alarms_counted(&s, buf, false);
        assert_eq!(skipping, every);
        // `123# 1#a` raises nothing: the `not-log-alarm` rule cancels alarm 0.
        let want: Vec<Vec<u32>> = vec![
            vec![0],
            vec![1, 2],
            vec![0, 1, 2],
            vec![0, 1, 2],
            vec![1, 2],
            vec![2],
        ];
        assert_eq!(every, want);
    }

    #[test]
    fn the_dfa_part_stops_at_its_first_match_only_when_its_rules_are_alike() {
        // Rules without literals (the DFA part); the second line matches both.
        let buf = b"at 10.1.2 ok\nERRORS at 10.1.2\nFATAL\n";
        for (b, want) in [
            (1, vec![vec![0], vec![0, 1], vec![1]]),
            (0, vec![vec![0]; 3]),
        ] {
            let s = set(
                &[(r"\d+\.\d+\.\d+", &[0], false), (r"[A-Z]{5,}", &[b], false)],
                8192,
            );
            assert!(s.lits.is_none() && s.dfa.is_some());
            for every in [false, true] {
                let (got, m) = alarms_counted(&s, buf, every);
                assert_eq!(got, want, "alarms {b}, every rule counted: {every}");
                // Alike rules (one alarm) stop at the line's first match unless every rule is
                // counted: the second line then counts one of them.
                let counted: u64 = m.rule_hits().iter().sum();
                let stops = b == 0 && !every;
                assert_eq!(
                    counted,
                    if stops { 3 } else { 4 },
                    "alarms {b}, every: {every}"
                );
            }
        }
    }

    #[test]
    fn self_prefix_is_never_matched() {
        let s = set(&[("", &[0], false)], 8192);
        let got = hits(&s, b"[uwsgi-alarm-curl] x\n[uwsgi-alarX\n");
        assert_eq!(got, vec![("[uwsgi-alarX\n".into(), vec![0])]);
    }

    #[test]
    fn anchored_literals_match_only_at_the_line_start() {
        let rules = ["^STORM", "^(ERR)", "^a b", "WARN"];
        let s = set(
            &[
                (rules[0], &[0], false),
                (rules[1], &[1], false),
                (rules[2], &[2], false),
                (rules[3], &[3], false),
            ],
            8192,
        );
        let text =
            b"STORM x\nx STORM\nSTORMY\n STORM\nERR\nERRSTORM\nxERR\na b\naa b\nWARN ERR\nSTOR\n\n";
        let res: Vec<regex::bytes::Regex> = rules
            .iter()
            .map(|r| regex::bytes::Regex::new(r).unwrap())
            .collect();
        let mut want = Vec::new();
        for line in text.split_inclusive(|&b| b == b'\n') {
            let on: Vec<u32> = (0..rules.len() as u32)
                .filter(|&i| res[i as usize].is_match(line))
                .collect();
            if !on.is_empty() {
                want.push((String::from_utf8_lossy(line).into_owned(), on));
            }
        }
        assert_eq!(hits(&s, text), want);
        assert_eq!(want.len(), 6);
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
        let prefix = |p: &str| {
            let h = parse_regex(p).unwrap();
            rule_needles(&h).is_some_and(|(lits, ci)| is_prefix(&h, &lits, ci))
        };
        assert!(prefix("^Connection refused"));
        assert!(prefix("^(STORM)"));
        assert!(!prefix("(?m)^STORM"));
        assert!(!prefix("(?i)^storm error"));
        assert!(!prefix("^STORM$"));
        assert!(!prefix("^STORM|x"));
        assert!(!prefix("STORM"));
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
        // A run of literals through small parts: a line of another shape fails a gate, the
        // rule's own lines (PCRE's matches) pass every gate.
        let gated = |rule: &str, other: &[u8], own: &[&[u8]]| {
            let g = gates(rule);
            assert!(g.iter().any(|g| !g.holds(other)), "{rule}: {g:?}");
            let re = meta::Regex::new(rule).unwrap();
            for line in own {
                assert!(re.is_match(line), "{rule}");
                assert!(g.iter().all(|g| g.holds(line)), "{rule}: {g:?}");
            }
        };
        // Through an optional literal: "tty= ruser=" or "tty=ftp ruser=", not " ruser=".
        gated(
            r"pam_unix\(\S+\): authentication failure; logname=\S* tty=(ftp)? ruser=\S* rhost=\S+",
            b"pam_unix(sshd:auth): authentication failure; logname= tty=ssh ruser= rhost=h",
            &[
                b"pam_unix(vsftpd:auth): authentication failure; logname= tty=ftp ruser= rhost=h",
                b"pam_unix(x): authentication failure; logname=a tty= ruser=b rhost=h",
            ],
        );
        // Through a captured class and an alternation of short literals: `: (\+|-) `.
        gated(
            r"^\w{3} [._[:alnum:]-]+ su(\[[0-9]+\])?: (\+|-) (/dev/)?(pts/[0-9]{1,2}|tty[0-9]) \S+$",
            b"Dec host su[1]: pam_unix(su:session): tty1 x",
            &[
                b"Dec host su: + /dev/pts/1 a:b",
                b"Dec host su[12]: - tty1 root:x",
            ],
        );
        assert!(contains_folded(b"xxERrorx", b"error"));
        assert!(!contains_folded(b"xxERrox", b"error"));
        assert!(contains_folded(b"abc", b""));
        // Looked for by each of its bytes first, the answer is the same.
        let mut next = xorshift(0x5851_f42d_4c95_7f2d);
        for _ in 0..20_000 {
            let hay: Vec<u8> = (0..next() % 24)
                .map(|_| b"sShHdD[x"[(next() % 8) as usize])
                .collect();
            let lower: Vec<u8> = (0..1 + next() % 4)
                .map(|_| b"shd[x"[(next() % 5) as usize])
                .collect();
            let want = hay
                .windows(lower.len())
                .any(|w| w.eq_ignore_ascii_case(&lower));
            assert_eq!(contains_folded(&hay, &lower), want, "{hay:?} {lower:?}");
            for rare in 0..lower.len() {
                assert_eq!(
                    gate::contains_folded_at(&hay, &lower, rare),
                    want,
                    "{hay:?} {lower:?} {rare}"
                );
            }
        }
        assert_eq!(gate::rarest_byte(b"sshd["), 4);
    }

    /// A rule's automaton starts no earlier than its lead before its literal's first place:
    /// the lead counts the parts before the literal at their longest, and the place within
    /// the literal part; a part of no longest length, or a literal not in a part, has none.
    #[test]
    fn a_rule_found_by_a_literal_runs_from_its_lead_before_it() {
        let lead_of = |p: &str, needles: &[&str]| {
            let h = parse_regex(p).unwrap();
            let n: Vec<Vec<u8>> = needles.iter().map(|n| n.as_bytes().to_vec()).collect();
            gate::lead(&syntax::for_existence(&h), &n)
        };
        assert_eq!(
            lead_of(
                "authentication failure; .*user=root",
                &["authentication failure; "]
            ),
            Some(0)
        );
        assert_eq!(lead_of(r"\d{2} ERROR", &[" ERROR"]), Some(2));
        assert_eq!(
            lead_of(r"(ab|c)\d{1,3}x? disk full", &["disk full"]),
            Some(7)
        );
        assert_eq!(lead_of("(GET|HEAD) /index", &[" /index"]), Some(4));
        assert_eq!(lead_of("xx(?:[0-9]+)? disk full", &[" disk full"]), None);
        assert_eq!(lead_of(".*disk full", &["disk full"]), Some(0));
        assert_eq!(
            lead_of("(disk|tape) full", &["disk full", "tape full"]),
            Some(0)
        );
        assert_eq!(lead_of("a(disk|tape) full", &[]), None);
        // By the prefixes: the needles run through a part of alternatives.
        let failed = ["Failed password for ", "Failed publickey for "];
        assert_eq!(
            lead_of(r"Failed (password|publickey) for \S+ from", &failed),
            Some(0)
        );
        assert_eq!(
            lead_of(r"(ab|c)Failed (password|publickey) for \S+", &failed),
            Some(2)
        );
        assert_eq!(
            lead_of(r"(ab|c)?Failed (password|publickey) for \S+", &failed),
            Some(0)
        );
        assert_eq!(
            lead_of(r"\w+ Failed (password|publickey) for \S+", &failed),
            None
        );
        // A prefix without a needle (the prefixes are every match's start): none.
        assert_eq!(
            lead_of(r"(Failed|Bad) (password|publickey) for \S+", &failed),
            None
        );
        // Lines where the literal is found past the match's start, and first before a match:
        // every one raises, as each rule's own regex says.
        let rules = [
            r"\d{2} ERROR:",
            r"(ab|c)\d{1,3}x? disk full",
            "GET /index",
            r"\[error\] [^:]+: File does not exist",
            r"(ab|c)Failed (password|publickey) for \S+ from",
        ];
        let s = one_alarm_each(&rules);
        let lines: &[&[u8]] = &[
            b"12 ERROR: x\n",
            b"aa 12 ERROR: x\n",
            b"ab123x disk full\n",
            b"q disk full c7 disk full\n",
            b"x GET /index GET /indexx\n",
            b"[error] a: File [error] b: File does not exist\n",
            b"no ERROR: 1 ERROR: here\n",
            b"x abFailed publickey for r from\n",
            b"cFailed password for q Failed publickey for r from\n",
        ];
        for line in lines {
            let want: Vec<u32> = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| meta::Regex::new(r).unwrap().is_match(line))
                .map(|(i, _)| i as u32)
                .collect();
            let got = hits(&s, line);
            let got: Vec<u32> = got.into_iter().flat_map(|(_, a)| a).collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
        }
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
        // A suffix's prefixes run on through a repetition of fixed count, and stop at one
        // without (the parts after it are not looked at).
        assert_eq!(
            lits(r"\S+ id=(ab){2}cdefgh"),
            Some(vec![b" id=ababcdefgh".to_vec()])
        );
        assert_eq!(
            lits(r"\S+ id=\d+cdefghijklmnop"),
            Some(vec![b"cdefghijklmnop".to_vec()])
        );
    }

    /// fail2ban's `apache-badbots`: a request line's `HTTP` (in every line of a web log) or
    /// one of many user agents: the user agents, as written (not folded, though `\w` holds a
    /// case pair and folding makes fewer of them), and lines are matched as before.
    #[test]
    fn many_long_alternatives_beat_a_short_common_literal() {
        let agents: Vec<String> = (0..40).map(|i| format!("BadAgent{i:02}/1\\.0")).collect();
        let pattern = format!(
            "^\\w+ -.*\"(GET|POST|HEAD).*HTTP.*\"(?:{}|EmailSiphon|Emailsiphon)\"$",
            agents.join("|")
        );
        let (lits, ci) = rule_needles(&parse_regex(&pattern).unwrap()).unwrap();
        assert!(!ci);
        assert_eq!(lits.len(), 42);
        assert!(
            lits.contains(&b"BadAgent07/1.0".to_vec()) && lits.contains(&b"Emailsiphon".to_vec())
        );
        // Beyond `MAX_UNION_NEEDLES` the rule keeps its short literal.
        let many: Vec<String> = (0..MAX_UNION_NEEDLES + 1)
            .map(|i| format!("BadAgent{i:03}"))
            .collect();
        let (lits, _) =
            rule_needles(&parse_regex(&format!("HTTP.*(?:{})", many.join("|"))).unwrap()).unwrap();
        assert_eq!(lits, vec![b"HTTP".to_vec()]);
        // Short alternatives beyond a rule's usual count are its literals too when it has no
        // others (without them it has none: the automaton over every byte).
        let short: Vec<String> = (0..20).map(|i| format!("ab{i:02}")).collect();
        let h = parse_regex(&format!("\\d+(?:{})", short.join("|"))).unwrap();
        let want: Vec<Vec<u8>> = short.iter().map(|s| s.as_bytes().to_vec()).collect();
        assert_eq!(rule_needles(&h), Some((want, false)));
        let filler: Vec<String> = (0..40)
            .map(|i| format!("filler rule {i:02} here"))
            .collect();
        let mut rules: Vec<(&str, &[u32], bool)> = vec![(pattern.as_str(), &[0], false)];
        rules.extend(filler.iter().map(|f| (f.as_str(), &[1u32][..], false)));
        let s = set(&rules, 8192);
        let text = b"host - - \"GET / HTTP/1.1\" 200 \"Mozilla/5.0\"\n\
                     host - - \"GET / HTTP/1.1\" 200 \"BadAgent13/1.0\"\n\
                     BadAgent13/1.0 alone\n\
                     h2 - \"POST /x HTTP/1.0\" \"Emailsiphon\"\n";
        let got = hits(&s, text);
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            lines,
            vec![
                "host - - \"GET / HTTP/1.1\" 200 \"BadAgent13/1.0\"\n",
                "h2 - \"POST /x HTTP/1.0\" \"Emailsiphon\"\n"
            ]
        );
    }

    #[test]
    fn many_short_literals_that_fit_nibble_tables_leave_the_long_ones_their_stride() {
        // Four of 44 rules have short literals (more than a twentieth): they stay in the one
        // search only when they would not fit nibble tables of their own (and all 45 literals
        // together fit none).
        let filler: Vec<String> = (0..40)
            .map(|i| format!("long literal number {i:02}"))
            .collect();
        let mut rules: Vec<(&str, &[u32], bool)> = vec![
            (" E [A-Z]\\w+: ", &[0], false),
            ("node-\\d+ .*fail", &[1], false),
            ("\\|Step_\\w+\\|", &[2], false),
            ("(?i)\\b(denied|forbidden)\\b", &[3], false),
        ];
        rules.extend(filler.iter().map(|f| (f.as_str(), &[4u32][..], false)));
        let s = set(&rules, 8192);
        let avx2 = crate::litscan::has_avx2();
        let stride = s.lits.as_ref().map(|l| l.shape().2);
        if avx2 {
            assert_eq!(stride, Some(4));
            assert!(s.short.is_some());
        } else {
            assert_eq!(stride, Some(1));
            assert!(s.short.is_none());
        }
        let text = b"a E Foo: x\nnode-12 link failed\nnode-x fail\n|Step_a|\n\
                     access DENIED\nundenied\nlong literal number 07 and E Bar: y\nnothing\n";
        let got = hits(&s, text);
        let lines: Vec<(&str, &[u32])> = got.iter().map(|(l, a)| (l.as_str(), &a[..])).collect();
        assert_eq!(
            lines,
            vec![
                ("a E Foo: x\n", &[0][..]),
                ("node-12 link failed\n", &[1]),
                ("|Step_a|\n", &[2]),
                ("access DENIED\n", &[3]),
                ("long literal number 07 and E Bar: y\n", &[0, 4]),
            ]
        );
    }

    #[test]
    fn short_literals_beside_long_ones_are_searched_on_their_own() {
        // Enough rules with long literals that three with short ones stay few.
        let filler: Vec<String> = (0..60)
            .map(|i| format!("filler rule {i:02} here"))
            .collect();
        let mut rules: Vec<(&str, &[u32], bool)> = vec![
            ("disk full on \\w+", &[0], false),
            ("printer on fire", &[1], false),
            (" su(\\[\\d+\\])?: \\(x \\w+\\)", &[2], false),
            ("(?i)[a-z]+ oops\\b", &[3], false),
            ("^\\d+$", &[4], false),
            (" sudo", &[5], false),
        ];
        rules.extend(filler.iter().map(|f| (f.as_str(), &[6u32][..], false)));
        let rules = &rules[..];
        let s = set(rules, 8192);
        // The two short rules needing an automaton in `short`; the literal-only ` sudo` and
        // the literal-free rule in the DFA part.
        assert!(s.lits.is_some() && s.short.is_some());
        assert!(s.dfa.as_ref().is_some_and(|d| d.ids == [4, 5]));
        let text = b"x su: (x root) disk full on sda\n12\n su[3]: (x bob)\nsu: (x x)\n\
                     kernel OOPS now\nno oops\n\
                     oops\n sudo -i\nprinter on fire su[1]: (x a)\n\
                     ok\n";
        let got = hits(&s, text);
        let lines: Vec<(&str, &[u32])> = got.iter().map(|(l, a)| (l.as_str(), &a[..])).collect();
        assert_eq!(
            lines,
            vec![
                ("x su: (x root) disk full on sda\n", &[0, 2][..]),
                ("12\n", &[4]),
                (" su[3]: (x bob)\n", &[2]),
                ("kernel OOPS now\n", &[3]),
                ("no oops\n", &[3]),
                (" sudo -i\n", &[5]),
                ("printer on fire su[1]: (x a)\n", &[1, 2]),
            ]
        );
        // A line cut to the bufsize is searched again, by both searches.
        let cut = set(rules, 24);
        let got = hits(&cut, b"printer on fire su: (x a) and more text\n");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, vec![1]);
    }

    /// More rules without literals than one automaton is asked for every match of
    /// ([`WHICH_CHUNK`]), each on its own alarm: every line raises exactly the alarms of the
    /// rules that match it (the chunks' pattern numbers put back in the whole part's order),
    /// with every rule counted too.
    #[test]
    fn many_rules_without_literals_raise_each_its_own_alarm() {
        let shapes = [
            r"\d+\.\d+",
            r"[A-Z]{3,}",
            r"\s/[a-z]+",
            r"\(\w+\)",
            r"\d{2}:\d{2}",
            r"\b\w+=\S+",
            r"\[\d+\]",
            r"^\S+\s",
            r"\w+@\w+",
            r"[0-9a-f]{8}",
            r"\s-\d",
            r"\w\.\w+$",
        ];
        let rules: Vec<String> = (0..3 * WHICH_CHUNK)
            .map(|i| {
                format!(
                    "{}{}",
                    shapes[i % shapes.len()],
                    ["", "x?", r"\S?"][i / shapes.len() % 3]
                )
            })
            .collect();
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let set = one_alarm_each(&refs);
        assert!(set.dfa.as_ref().is_some_and(|d| d.ids.len() == rules.len()));
        let res: Vec<regex::bytes::Regex> = rules
            .iter()
            .map(|r| regex::bytes::Regex::new(&format!("(?-u){r}")).unwrap())
            .collect();
        let lines = [
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            "2015-10-18 18:01:47,978 INFO [main] org.apache.MRAppMaster: Created (app) x=1",
            "GET /index.html 200 deadbeef mail@host -5 end.txt",
            "plain words only",
            "",
        ];
        let buf: String = lines.iter().map(|l| format!("{l}\n")).collect();
        for every in [false, true] {
            let (got, _) = hits_counted(&set, buf.as_bytes(), every);
            let want: Vec<(String, Vec<u32>)> = lines
                .iter()
                .map(|l| {
                    let a: Vec<u32> = (0..rules.len() as u32)
                        .filter(|&i| res[i as usize].is_match(l.as_bytes()))
                        .collect();
                    (format!("{l}\n"), a)
                })
                .filter(|(_, a)| !a.is_empty())
                .collect();
            let got: Vec<(String, Vec<u32>)> = got
                .into_iter()
                .map(|(l, mut a)| {
                    a.sort_unstable();
                    (l, a)
                })
                .collect();
            assert_eq!(got, want, "every rule counted: {every}");
        }
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
        // `(?i)warn`, a literal ignoring case, has the short literals' search (the DFA
        // part's compares case).
        assert!(s.lits.is_some() && s.dfa.as_ref().is_some_and(|d| d.ids == [1]));
        assert!(s.short.is_some());
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
    #[cfg(target_arch = "x86_64")]
    fn class_windows_find_the_lines_of_rules_without_literals() {
        let rules = [
            r"\b[A-Z][A-Z0-9_]{7,}\b",
            r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+",
        ];
        let s = windows_agree_with_per_line_regexes(&rules);
        assert!(s.dfa.as_ref().is_some_and(|d| d.pre.is_none()));
    }

    #[test]
    fn rules_anchored_at_a_line_end_are_checked_there_beside_the_searches() {
        // `[0-9]: $`'s window ": " is too common for the windows of all three; anchored at
        // the line's start or end, the first two are checked there, the third keeps its
        // windows and the fourth its short literal.
        let rules = [
            r"^x[0-9]",
            r"[0-9]: $",
            r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+",
            r"su\[[0-9]+\]: x",
        ];
        let s = windows_agree_with_per_line_regexes(&rules);
        let d = s.dfa.as_ref().unwrap();
        assert!(d.ends.is_some() && d.pre.is_some() && d.needs_classes);
        // Without the others, the anchored rules alone.
        let s = one_alarm_each(&rules[..2]);
        let d = s.dfa.as_ref().unwrap();
        assert!(d.ends.is_some() && d.pre.is_none() && d.classes.is_none() && !d.needs_classes);
        // Lines cut to `log-master-bufsize` are matched cut, by the anchored rules too (`$`
        // holds at the cut, as it did for uWSGI's chunk).
        let lines: [&[u8]; 9] = [
            b"x1 and more\n",
            b"port 7: \n",
            b"abc 7: x\n",
            b"x\n",
            b"7: \n",
            b"su[4]: x\n",
            b"10.0.0.1:80 x1\n",
            b"x17: \r\n",
            b"no 12: \n",
        ];
        let buf = lines.concat();
        let re: Vec<regex_automata::meta::Regex> = rules
            .iter()
            .map(|r| regex_automata::meta::Regex::new(&format!("(?-u){r}")).unwrap())
            .collect();
        for bufsize in [1, 2, 3, 4, 5, 7, 64] {
            let s = one_alarm_each_cut(&rules, bufsize);
            assert!(s.dfa.as_ref().is_some_and(|d| d.ends.is_some()));
            let want: Vec<(String, Vec<u32>)> = buf
                .split_inclusive(|&b| b == b'\n')
                .filter_map(|line| {
                    let (msg, text) = matcher::cut(line, bufsize);
                    let a: Vec<u32> = (0..rules.len() as u32)
                        .filter(|&i| re[i as usize].is_match(text))
                        .collect();
                    (!a.is_empty()).then(|| (String::from_utf8_lossy(msg).into_owned(), a))
                })
                .collect();
            assert_eq!(hits(&s, &buf), want, "bufsize {bufsize}");
        }
    }

    #[test]
    fn short_literals_and_class_windows_find_the_lines_together() {
        // A rule with a short literal ("su[": the DFA part's Teddy) beside the two without.
        let rules = [
            r"\b[A-Z][A-Z0-9_]{7,}\b",
            r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+",
            r"su\[[0-9]+\]: x",
        ];
        let s = windows_agree_with_per_line_regexes(&rules);
        let d = s.dfa.as_ref().unwrap();
        assert!(d.needs_classes);
        assert_eq!(d.pre.is_some(), d.classes.is_some());
    }

    /// Compile `rules` (rule i raises alarm i), check that the class windows are used exactly
    /// when the CPU has AVX2, and that every line each rule matches is found over random text
    /// made of the bytes that matter.
    fn windows_agree_with_per_line_regexes(rules: &[&str]) -> RuleSet {
        let pieces: [&[u8]; 15] = [
            b"x1",
            b"7: ",
            b"10.0.0.1:8080",
            b"12:34:56.789",
            b"ERROR_CODE",
            b"AB",
            b"x",
            b" ",
            b"9",
            b".",
            b":",
            b"\n",
            b"su[",
            b"]: ",
            b"su[42]: x",
        ];
        windows_agree_over(rules, &pieces)
    }

    /// [`windows_agree_with_per_line_regexes`] over random text made of `pieces` (one of them
    /// `\n`).
    fn windows_agree_over(rules: &[&str], pieces: &[&[u8]]) -> RuleSet {
        let s = one_alarm_each(rules);
        let uses_windows = s.dfa.as_ref().is_some_and(|d| d.classes.is_some());
        let avx2 = crate::litscan::has_avx2();
        assert_eq!(
            uses_windows, avx2,
            "class windows are used exactly when AVX2 is there"
        );
        let mut next = xorshift(0x0123_4567_89AB_CDEF);
        let buf: Vec<u8> = (0..20_000)
            .flat_map(|_| pieces[(next() % pieces.len() as u64) as usize].to_vec())
            .collect();
        let re: Vec<regex_automata::meta::Regex> = rules
            .iter()
            .filter_map(|r| regex_automata::meta::Regex::new(&format!("(?-u){r}")).ok())
            .collect();
        assert_eq!(re.len(), rules.len());
        let mut want = Vec::new();
        let mut per_rule = vec![0; rules.len()];
        for line in buf.split_inclusive(|&b| b == b'\n') {
            let text = without_terminator(line);
            let alarms: Vec<u32> = (0..rules.len() as u32)
                .filter(|&i| re[i as usize].is_match(text))
                .collect();
            for &a in &alarms {
                per_rule[a as usize] += 1;
            }
            if !alarms.is_empty() {
                want.push((String::from_utf8_lossy(line).into_owned(), alarms));
            }
        }
        assert!(
            per_rule.iter().all(|&n| n > 20),
            "too few matching lines per rule: {per_rule:?}"
        );
        assert_eq!(hits(&s, &buf), want);
        s
    }

    #[test]
    fn lazy_jit_refuses_at_start_and_matches_alike_from_many_threads() {
        assert!(LazyJit::new("a(b").is_err());
        let re = LazyJit::new(r"(?<!x)ERROR (\w+) \1").unwrap();
        let lines: [(&[u8], bool); 4] = [
            (b"ERROR disk disk", true),
            (b"xERROR disk disk", false),
            (b"ERROR disk full", false),
            (b"\xff ERROR a a", true),
        ];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for (l, want) in lines {
                        assert_eq!(re.is_match(l), want, "{}", String::from_utf8_lossy(l));
                    }
                });
            }
        });
        // The JIT (when PCRE2 has it) and the interpreter agree.
        for (l, want) in lines {
            assert_eq!(re.interpreted.is_match(l).unwrap(), want);
        }
    }

    #[test]
    fn a_rule_that_is_a_chain_is_walked_and_makes_no_automaton() {
        let s = set(
            &[
                ("ERROR \\d+ (disk|fan)", &[0], false),
                ("WARN \\d+\\b", &[1], false),
            ],
            8192,
        );
        let mut m = s.matcher();
        let mut got = Vec::new();
        let buf: &[u8] = b"ERROR 12 disk\nERROR x disk\nERROR 7 fan!\nWARN 3 y\nWARN 3y\n";
        m.scan_lines(buf, &mut |l, al| got.push((l.to_vec(), al.to_vec())));
        let want: Vec<(Vec<u8>, Vec<u32>)> = vec![
            (b"ERROR 12 disk\n".to_vec(), vec![0]),
            (b"ERROR 7 fan!\n".to_vec(), vec![0]),
            (b"WARN 3 y\n".to_vec(), vec![1]),
        ];
        assert_eq!(got, want);
        // The first rule's group was walked: no automaton cache; the second's (`\b`) ran.
        let cache = |r: usize| m.group_caches[s.group_of[r] as usize].is_some();
        assert!(!cache(0) && cache(1));
    }

    #[test]
    fn siblings_share_caches_and_match_alike() {
        // (`\b`: a rule its automaton confirms, not a walk: see `chain`.)
        let s = set(
            &[
                ("ERROR \\d+\\b", &[0], false),
                ("(?i)warn", &[1], false),
                ("^\\d+$", &[2], false),
                (r"\b[A-Z][A-Z0-9_]{7,}\b", &[0], false),
            ],
            8192,
        );
        let bufs: [&[u8]; 3] = [
            b"ERROR 12\nok\n345\nWaRn me\n",
            b"x\nERROR_CODE_7 y\nERROR 9 warn\n",
            b"7\nnothing\n",
        ];
        let mut first = s.matcher();
        let mut a = first.sibling();
        let mut b = first.sibling();
        for (k, buf) in bufs.iter().cycle().take(9).enumerate() {
            let m = if k % 2 == 0 { &mut a } else { &mut b };
            let mut got = Vec::new();
            m.scan_lines(buf, &mut |l, al| got.push((l.to_vec(), al.to_vec())));
            let mut want = Vec::new();
            s.matcher()
                .scan_lines(buf, &mut |l, al| want.push((l.to_vec(), al.to_vec())));
            assert_eq!(got, want, "buffer {k}");
        }
        // The caches live in the shared slot between calls, not in either sibling.
        assert!(a.group_caches.iter().all(Option::is_none) && a.scan_cache.is_none());
        let shared = a
            .shared
            .as_ref()
            .map(|c| c.lock().map(|c| c.group.iter().any(Option::is_some)));
        assert!(matches!(shared, Some(Ok(true))));
        // Per-matcher counts stay per matcher: each sibling counted its own buffers' hits.
        let (ha, hb): (u64, u64) = (a.rule_hits().iter().sum(), b.rule_hits().iter().sum());
        assert!(ha > 0 && hb > 0 && ha != hb, "{ha} {hb}");
    }

    #[test]
    fn the_helpers_of_siblings_share_one_set_of_caches_of_their_own() {
        // (`\b`: a rule its automaton confirms, not a walk: see `chain`.)
        let s = set(
            &[("ERROR \\d+\\b", &[0], false), ("^\\d+$", &[1], false)],
            8192,
        );
        let buf: &[u8] = b"ERROR 12\nok\n345\n";
        let mut first = s.matcher();
        let (mut a, mut b) = (first.sibling(), first.sibling());
        let (mut ha, hb) = (a.helper(), b.helper());
        let slot = |m: &Matcher| m.shared.clone();
        let (Some(sa), Some(sha), Some(shb)) = (slot(&a), slot(&ha), slot(&hb)) else {
            panic!("a helper and a sibling take shared caches");
        };
        // One set for every helper (100 inputs made 100 sets of lazy DFAs), never the
        // siblings' own: a sibling and its helper match at the same time.
        assert!(Arc::ptr_eq(&sha, &shb));
        assert!(!Arc::ptr_eq(&sa, &sha));
        let mut got = Vec::new();
        ha.scan_lines(buf, &mut |l, al| got.push((l.to_vec(), al.to_vec())));
        let mut want = Vec::new();
        a.scan_lines(buf, &mut |l, al| want.push((l.to_vec(), al.to_vec())));
        assert_eq!(got, want);
        let filled = |c: &Arc<std::sync::Mutex<matcher::Caches>>| {
            c.lock().map(|c| c.group.iter().any(Option::is_some)).ok()
        };
        assert_eq!(
            filled(&shb),
            Some(true),
            "the helpers' caches were made once"
        );
        let mut b2 = b.sibling();
        assert!(b2.helper().shared.is_some_and(|c| Arc::ptr_eq(&c, &sha)));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn common_class_windows_are_turned_off_and_nothing_is_missed() {
        let s = set(&[("[a-f0-9]{32}", &[0], false)], 8192);
        if s.dfa.as_ref().is_none_or(|d| d.classes.is_none()) {
            return; // No AVX2 here: the windows are never used.
        }
        let mut buf = b"id deadbeef 12345678 cafe\n".repeat(400_000);
        buf.extend_from_slice(b"key 0123456789abcdef0123456789abcdef\n");
        let mut m = s.matcher();
        let mut got = Vec::new();
        // Whole lines per call, as the pipeline gives them.
        let mut start = 0;
        while start < buf.len() {
            let mut end = (start + (1 << 20)).min(buf.len());
            end = buf[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(buf.len(), |i| i + 1);
            m.scan_lines(&buf[start..end], &mut |l, _| got.push(l.to_vec()));
            start = end;
        }
        assert!(
            m.windows.off,
            "eight hex digits in every line: the windows are turned off"
        );
        assert_eq!(
            got,
            vec![b"key 0123456789abcdef0123456789abcdef\n".to_vec()]
        );
    }

    /// Rules whose windows start every match at a fixed place: the automaton starts that
    /// far before a candidate line's first window, and finds what the rules match anywhere
    /// after it (a window that is no match before a match, a match right at the line's start,
    /// look-behind at the place it starts).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_automaton_starts_at_the_first_window_less_its_place() {
        let rules = [
            r"\b[A-Z][A-Z0-9_]{7,}\b",
            r"[0-9]{3}:[a-f]{4}[0-9]{2}",
            r"[0-9]{1,3}\.[0-9]{1,3}:[0-9]+",
        ];
        let pieces: [&[u8]; 18] = [
            b"x",
            b"ABCDEFGH",
            b"ABCDEFG",
            b"_Z9",
            b" ",
            b"123:",
            b"99:",
            b"abcd",
            b"ab",
            b"77",
            b"-",
            b"Q",
            b"1.",
            b"1234.5",
            b":8",
            b".",
            b"\n",
            b"321:abcd",
        ];
        let s = windows_agree_over(&rules, &pieces);
        if let Some(dfa) = s.dfa.as_ref().filter(|d| d.classes.is_some()) {
            assert!(dfa.window_lead.is_some(), "every window at a known place");
        }
    }

    #[test]
    fn the_literal_search_is_placed_again_by_the_stream_and_nothing_is_missed() {
        // 120 literal rules (too many for nibble tables: the filter serves), every line of the
        // stream holding words of their literals, a few lines holding a whole one.
        let pats: Vec<String> = (0..120)
            .map(|i| format!("session {i:03} opened for user"))
            .collect();
        let rules: Vec<(&str, &[u32], bool)> = pats
            .iter()
            .map(|p| (p.as_str(), &[0u32][..], false))
            .collect();
        let s = set(&rules, 8192);
        let shape = s.lits.as_ref().map(LitScan::shape);
        assert!(
            shape.is_some_and(|(n, _, _, bits)| n == 120 && bits > 0),
            "{shape:?}"
        );
        let mut stream = Vec::new();
        let mut want = Vec::new();
        let mut i = 0usize;
        while stream.len() < 3 * placed::SAMPLE as usize {
            let whole = i.is_multiple_of(997);
            let line = if whole {
                format!("x session {:03} opened for user root\n", i % 120)
            } else {
                format!("{i} session {:03} closed; opened for user {i}\n", i % 120)
            };
            if whole {
                want.push(line.clone().into_bytes());
            }
            stream.extend_from_slice(line.as_bytes());
            i += 1;
        }
        let mut first = s.matcher();
        let (mut a, mut b) = (first.sibling(), first.sibling());
        let mut got = Vec::new();
        let mut start = 0;
        for k in 0.. {
            if start >= stream.len() {
                break;
            }
            let mut end = (start + (256 << 10)).min(stream.len());
            end = stream[..end]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(stream.len(), |i| i + 1);
            let m = if k % 2 == 0 { &mut a } else { &mut b };
            m.scan_lines(&stream[start..end], &mut |l, _| got.push(l.to_vec()));
            start = end;
        }
        assert_eq!(got, want);
        // Placed once after the first MiB (the next sample starts 256 MiB later), and both
        // siblings took it.
        assert_eq!(s.placement.generation(), 1);
        assert!(a.placed.is_some() && b.placed.is_some());
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

    /// The existence form of a rule (the parts at its ends that match the empty string
    /// anywhere taken off) matches exactly the lines the rule matches: for rules with optional
    /// prefixes and suffixes, anchors, assertions and empty branches, on chosen lines and on
    /// random lines of the bytes those rules mention.
    #[test]
    fn existence_form_matches_the_lines_the_rule_matches() {
        let rules = [
            r"(?:\[\])?\s*(?:<[^.]+\.[^.]+>\s+)?(?:\S+\s+)?(?P<m>(?:sshd\[\d+\]:\s+)?)Failed (\S+) for \S+(?: port \d+)?",
            r"(?:x$)?ab",
            r"(?:^x)?ab",
            r"ab(?:^x)?",
            r"\b?ab",
            r"\bab(?: c)*",
            r"(?:a|)b+c?",
            r"(?:a|b)*",
            r"(a|)?$",
            r"(?:a*|b)c",
            r"(?:ab|c*d)e{0,2}",
            r"^a?b?$",
            r"(?:(?:a)?b|c)d?",
            r"(?:a?(?:b|$))c?",
            r"x?(?:y|\bz)w?",
            r"(?:a b)?c(?: d)?\s*$",
            r"\s+a",
            r"a\s+",
            r"(?:ab){2,}c",
            r"c(?:ab){2,3}",
            r"(?:ab){2,3}",
            r"(?:a|b)+$",
            r"^(?:a|b)+",
            r"(?:\bz|y)+w",
            r"a+",
            r"(?:x|a+)b{1,}",
        ];
        let lines: Vec<Vec<u8>> = [
            "Dec 10 06:55:46 LabSZ sshd[24200]: Failed password for root port 22",
            "<a.b> host Failed x for y",
            "Failed",
            "ab",
            "xab",
            "x ab",
            "abx",
            "b",
            "a",
            "",
            "c",
            "cd",
            "de",
            "ac",
            "bc d",
            "a bc",
            "zw",
            "x zw",
            "xzw",
            "yw",
            "a b c d ",
            "c  ",
            "ababc",
            "abc",
            "cabab",
            "ab ab",
            "  a",
            "a  ",
            "xbb",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let random: Vec<Vec<u8>> = (0..3000)
            .map(|_| {
                let n = (next() % 9) as usize;
                (0..n)
                    .map(|_| b"abcdxyzw $"[(next() % 10) as usize])
                    .collect()
            })
            .collect();
        let build = |h: &Hir| {
            meta::Builder::new()
                .configure(base_config())
                .build_from_hir(h)
                .ok()
        };
        for rule in rules {
            let h = parse_regex(rule).unwrap();
            let (whole, trimmed) = (
                build(&h).unwrap(),
                build(&syntax::for_existence(&h)).unwrap(),
            );
            for line in lines.iter().chain(&random) {
                assert_eq!(
                    whole.is_match(&line[..]),
                    trimmed.is_match(&line[..]),
                    "{rule} on {:?} (as {})",
                    String::from_utf8_lossy(line),
                    syntax::for_existence(&h)
                );
            }
        }
        // What it takes off: fail2ban's prefix before the message, an optional suffix, and
        // the last part's repetition.
        let h = parse_regex(rules[0]).unwrap();
        let expected = parse_regex(r"Failed (\S+) for \S").unwrap();
        assert_eq!(syntax::for_existence(&h).to_string(), expected.to_string());
        // A branch that matches the empty string anywhere: every line matches.
        let h = parse_regex(r"(?:a|)").unwrap();
        assert_eq!(syntax::for_existence(&h), Hir::empty());
        // A repetition at an end: its least.
        let h = parse_regex(r"\s+error (\d+)").unwrap();
        let expected = parse_regex(r"\serror \d").unwrap();
        assert_eq!(syntax::for_existence(&h).to_string(), expected.to_string());
        // Anchors stay.
        let h = parse_regex(r"^a?b?$").unwrap();
        assert_eq!(syntax::for_existence(&h).to_string(), h.to_string());
    }
}
