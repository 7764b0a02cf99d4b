//! Confirming a rule by walking it: rules that are a chain of literals and runs of a class.
//!
//! Role: most of a large hand-written rule set (logcheck's, Debian's) is rules like
//! `^\w{3} [ :[:digit:]]{11} [._[:alnum:]-]+ sshd\[[0-9]+\]: Connection closed by [.:[:xdigit:]]+ \[preauth\]$`:
//! anchored at the line's start, literals and runs of one byte class in a row, with a few
//! alternations and optional groups. [`Chain`] decides such a rule by walking the line: a
//! compare per literal, a class test per byte of a run, each branch tried in turn, where the
//! rule's lazy DFA costs a state transition per byte, most of them a cache miss (a thousand
//! rules' states do not stay in the first-level cache: Debian's 2,101 rules spent a fifth of
//! their CPU in their automata, on the lines that raise).
//! A run followed by what cannot start with a byte of its class (a literal whose first byte is
//! outside it, a run of a disjoint class, `$`, the rule's end) is taken as far as it goes and
//! never gives a byte back: a shorter take leaves a byte of the class where the next step needs
//! one outside it. Any other run gives bytes back one at a time, longest first, each time
//! walking on. A rule not anchored at `^` is walked from each place its first step can start:
//! where its literal occurs, or where one of the (at most three) bytes of its first class is.
//! Invariant: the answer is the regex's, for every tree [`Chain::of`] takes (no look-around but
//! `^` first and `$` last, no repetition of more than a byte but counted ones and `X?`); a walk
//! that would take more than a few steps a byte gives up and the rule's own automaton
//! (built at the first such line) answers instead, so no line costs more than the DFA would.

use crate::litscan::classes::{has, ByteSet};
use regex_automata::meta;
use regex_syntax::hir::{Class, Hir, HirKind, Look};
use std::sync::OnceLock;

/// Most steps in one chain, its branches' included (a rule longer than this keeps its
/// automaton).
const MAX_STEPS: usize = 512;
/// Most copies of a counted repetition of more than one step that are written out.
const MAX_COPIES: u32 = 16;
/// Deepest nesting of loops in a chain.
const MAX_LOOPS: usize = 3;
/// Deepest nesting of walks (each alternative, byte given back or loop copy tried nests one):
/// a walk deeper gives up (the stack of a thread matching lines is not grown by a long line).
const MAX_DEPTH: u32 = 1_024;

/// See the module's documentation.
#[derive(Debug)]
pub(super) struct Chain {
    steps: Box<[Step]>,
    /// The rule ends with `$`: the walk must end at the text's end.
    end: bool,
    /// Where a match may start.
    start: Start,
    /// The rule (its existence form), for the automaton that answers when a walk gives up.
    hir: Hir,
    fallback: OnceLock<Option<meta::Regex>>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// These bytes, exactly.
    Lit(Box<[u8]>),
    /// These bytes, each compared with the line's after OR-ing its `mask` byte into it (0x20
    /// where a letter is compared ignoring case, its byte here lower case; 0 elsewhere): a
    /// literal of a rule ignoring case, compared 8 bytes at a time.
    Fold { bytes: Box<[u8]>, mask: Box<[u8]> },
    /// From `min` to `max` bytes of `set`, as many as there are; `give_back`: fewer may be
    /// what a match takes (what follows may start with a byte of `set`).
    Run {
        set: ByteSet,
        min: u32,
        max: u32,
        give_back: bool,
        /// With `give_back`, when what follows takes a byte at least: the bytes it may start
        /// with (a run is given back only to where one of them is).
        after: Option<Box<ByteSet>>,
    },
    /// One of these sequences (an alternation, or an optional group and nothing): each is
    /// tried, with the steps after it, until one gets through.
    Alt(Box<[Branch]>),
    /// Any number of copies of a sequence that takes at least a byte, as many as get
    /// through: each copy is tried with the loop again after it, then the steps after it.
    Loop(Box<[Step]>),
}

/// One alternative of a [`Step::Alt`].
#[derive(Debug, Clone, PartialEq)]
struct Branch {
    steps: Box<[Step]>,
    /// The bytes the branch, then what follows it, may start with; `any`: it may get to the
    /// rule's end without taking a byte (whatever the next byte is, it may get through).
    first: ByteSet,
    any: bool,
}

impl Branch {
    fn of(steps: Box<[Step]>) -> Branch {
        Branch {
            steps,
            first: ByteSet::default(),
            any: true,
        }
    }
}

/// Where a chain's matches may start.
#[derive(Debug)]
enum Start {
    /// At the text's start (`^`).
    Anchored,
    /// Where its first step, a literal, occurs.
    Lit(Box<memchr::memmem::Finder<'static>>),
    /// At one of these bytes (its first step's class: one to three bytes).
    Bytes(Box<[u8]>),
    /// At a byte of a larger set (`table[b]`): the first bytes of its first step, a run or an
    /// alternation.
    Set(Box<[bool; 256]>),
    /// Where a later step, the pivot, occurs: the pivot and the steps after it are walked
    /// forwards from there, and when they get through, the steps before it backwards, over
    /// the line reversed (`before`: those steps reversed, walked from the pivot's place to
    /// anywhere before it). The two walks are independent: no step looks beyond its bytes.
    Pivot {
        at: usize,
        find: Find,
        before: Box<Chain>,
    },
}

/// How a pivot is found.
#[derive(Debug)]
enum Find {
    Lit(Box<memchr::memmem::Finder<'static>>),
    /// One of one to three bytes, `back` bytes into the pivot (a literal ignoring case is
    /// found by its rarest letter: ` connect` by `n` or `N`, not by every space).
    Bytes {
        bytes: Box<[u8]>,
        back: usize,
    },
    /// The text's end: a rule that ends with `$` and does not start with `^` is walked back
    /// from the line's end, its whole chain the steps before this pivot (no search through
    /// the line: `(?i)connect\s+\S+$` was walked from every `n` of a line that holds
    /// `connect`).
    End,
}

impl Find {
    #[inline]
    fn find(&self, t: &[u8]) -> Option<usize> {
        match self {
            Find::Lit(f) => f.find(t),
            Find::Bytes { bytes, back } => find_byte(bytes, t.get(*back..)?),
            Find::End => Some(t.len()),
        }
    }
}

/// The first place in `t` of one of `bytes` (one to three of them).
#[inline]
fn find_byte(bytes: &[u8], t: &[u8]) -> Option<usize> {
    match *bytes {
        [x] => memchr::memchr(x, t),
        [x, y] => memchr::memchr2(x, y, t),
        [x, y, z] => memchr::memchr3(x, y, z, t),
        _ => None,
    }
}

/// The largest chance in log text (the rarity model's) of a place a chain not anchored and
/// without a first literal is walked from (a byte of its first step's set, or its pivot):
/// beyond it, a walk from every such place costs about what the automaton does (a digit is
/// 0.27, `[cC]` 0.035, a space 0.15).
const MAX_START_CHANCE: f64 = 0.12;

thread_local! {
    /// A line reversed, for the walks back from a pivot (grown to the longest line once).
    static REVERSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What follows a sequence being walked: the rest of the enclosing sequences.
#[derive(Clone, Copy)]
struct Then<'a> {
    steps: &'a [Step],
    next: Option<&'a Then<'a>>,
}

/// A walk that ran out of its allowance.
struct GaveUp;

impl Chain {
    /// The chain of a rule's tree in its existence form, when it has one (module doc).
    pub(super) fn of(h: &Hir) -> Option<Chain> {
        let mut parts = Vec::new();
        flatten(h, &mut parts, true)?;
        let mut parts = parts.into_iter().peekable();
        let anchored = matches!(parts.peek(), Some(Part::Start));
        if anchored {
            parts.next();
        }
        let mut steps: Vec<Step> = Vec::new();
        let mut end = false;
        for part in parts {
            if end {
                // Something after `$` (another `$` included): left to the automaton.
                return None;
            }
            match part {
                Part::Start => return None,
                Part::End => end = true,
                Part::Step(s) => push(&mut steps, s),
            }
        }
        if size(&steps) > MAX_STEPS {
            return None;
        }
        let rule_end = Follow {
            bytes: ByteSet::default(),
            end: true,
        };
        fix(&mut steps, rule_end);
        let first = match steps.first() {
            Some(Step::Run { set, min, .. }) if *min > 0 => Some(*set),
            Some(Step::Fold { bytes, mask }) => Some(fold_first(bytes, mask)),
            // Every branch takes a byte (or what follows it does): its first bytes, with
            // what may follow an empty one, are where a match may start.
            Some(Step::Alt(branches)) if branches.iter().all(|b| !b.any) => {
                let mut set = ByteSet::default();
                for b in branches.iter() {
                    set = union(&set, &b.first);
                }
                Some(set)
            }
            _ => None,
        };
        let start = match steps.first() {
            _ if anchored => Start::Anchored,
            Some(Step::Lit(l)) => Start::Lit(Box::new(memchr::memmem::Finder::new(l).into_owned())),
            _ => match start_at(first.as_ref(), &steps) {
                // A literal found by `memmem` starts few walks: kept. Bytes, a set or a
                // letter of a literal ignoring case start one at every place they are, where
                // a rule ending with `$` is walked once, from the line's end.
                Some(
                    s @ Start::Pivot {
                        find: Find::Lit(_), ..
                    },
                ) => s,
                _ if end => pivot_at(steps.len(), Find::End, &steps),
                s => s?,
            },
        };
        Some(Chain {
            steps: steps.into_boxed_slice(),
            end,
            start,
            hir: h.clone(),
            fallback: OnceLock::new(),
        })
    }

    /// Whether `text` (a line without its terminator) matches the rule.
    #[inline]
    pub(super) fn matches(&self, text: &[u8]) -> bool {
        // Steps a walk may take: a few per byte (a walk that needs no giving back takes at
        // most one per byte and step).
        self.matches_within(text, 4 * text.len() + 4 * self.steps.len() + 64)
    }

    /// [`Chain::matches`] with an allowance of `allowance` steps for the walk.
    #[inline]
    fn matches_within(&self, text: &[u8], mut allowance: usize) -> bool {
        let walked = match (&self.start, self.steps.split_first()) {
            (Start::Lit(finder), Some((Step::Lit(lit), rest))) => {
                let places = |t: &[u8]| finder.find(t);
                self.walk_from_each(places, lit.len(), rest, text, &mut allowance)
            }
            (Start::Bytes(b), _) => {
                let places = |t: &[u8]| find_byte(b, t);
                self.walk_from_each(places, 0, &self.steps, text, &mut allowance)
            }
            (Start::Set(table), _) => self.walk_from_set(table, text, &mut allowance),
            (Start::Pivot { at, find, before }, _) => {
                self.walk_from_pivot(*at, find, before, text, &mut allowance)
            }
            _ => self.walk(&self.steps, None, text, 0, &mut allowance, 0),
        };
        match walked {
            Ok(found) => found,
            Err(GaveUp) => self.by_automaton(text),
        }
    }

    /// Walk `rest` from `len` bytes after each place `find` finds (the first in the text it
    /// is given).
    fn walk_from_each(
        &self,
        find: impl Fn(&[u8]) -> Option<usize>,
        len: usize,
        rest: &[Step],
        text: &[u8],
        allowance: &mut usize,
    ) -> Result<bool, GaveUp> {
        // Every place, overlapping ones too (`find_iter` skips those: `::` in `:::`).
        let mut from = 0;
        while let Some(at) = text.get(from..).and_then(&find) {
            spend(allowance, 1)?;
            let at = from + at;
            if self.walk(rest, None, text, at + len, allowance, 0)? {
                return Ok(true);
            }
            from = at + 1;
        }
        Ok(false)
    }

    /// Walk the chain from each place of `text` whose byte is in `table`.
    fn walk_from_set(
        &self,
        table: &[bool; 256],
        text: &[u8],
        allowance: &mut usize,
    ) -> Result<bool, GaveUp> {
        for (p, &b) in text.iter().enumerate() {
            if table[usize::from(b)] {
                spend(allowance, 1)?;
                if self.walk(&self.steps, None, text, p, allowance, 0)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Walk steps `at..` from each place `find` finds, and where they get through, `before`
    /// back from there over the line reversed (made once, at the first such place).
    fn walk_from_pivot(
        &self,
        at: usize,
        find: &Find,
        before: &Chain,
        text: &[u8],
        allowance: &mut usize,
    ) -> Result<bool, GaveUp> {
        let after = self.steps.get(at..).unwrap_or(&[]);
        REVERSED.with(|reversed| {
            // A walk never re-enters this one on its thread; a borrow refused all the same
            // leaves the line to the automaton.
            let Ok(mut reversed) = reversed.try_borrow_mut() else {
                return Err(GaveUp);
            };
            let mut made = false;
            let mut from = 0;
            while let Some(o) = text.get(from..).and_then(|t| find.find(t)) {
                spend(allowance, 1)?;
                let o = from + o;
                if self.walk(after, None, text, o, allowance, 0)? {
                    if !made {
                        reverse_into(&mut reversed, text);
                        made = true;
                    }
                    let back = &before.steps;
                    if before.walk(back, None, &reversed, text.len() - o, allowance, 0)? {
                        return Ok(true);
                    }
                }
                from = o + 1;
            }
            Ok(false)
        })
    }

    /// Whether `steps`, then `then`, get through `text` from `p`; `depth`: the walks this one
    /// is nested in.
    fn walk<'t>(
        &self,
        mut steps: &'t [Step],
        mut then: Option<&'t Then<'t>>,
        text: &[u8],
        mut p: usize,
        allowance: &mut usize,
        depth: u32,
    ) -> Result<bool, GaveUp> {
        if depth > MAX_DEPTH {
            return Err(GaveUp);
        }
        // PERF: what follows a sequence is walked on here, not in a nested walk (an
        // alternative's branch then costs one call, not two).
        'sequence: loop {
            for (i, step) in steps.iter().enumerate() {
                let Some(rest) = text.get(p..) else {
                    return Ok(false);
                };
                match step {
                    Step::Lit(lit) => {
                        if !starts_with(rest, lit) {
                            return Ok(false);
                        }
                        p += lit.len();
                    }
                    Step::Fold { bytes, mask } => {
                        if !starts_with_folded(rest, bytes, mask) {
                            return Ok(false);
                        }
                        p += bytes.len();
                    }
                    Step::Run {
                        set,
                        min,
                        max,
                        give_back,
                        after,
                    } => {
                        // PERF: one byte of a class (a letter of a rule ignoring case), tested
                        // at once.
                        if *max == 1 && *min == 1 {
                            match rest.first() {
                                Some(&b) if has(set, b) => {
                                    p += 1;
                                    continue;
                                }
                                _ => return Ok(false),
                            }
                        }
                        let lim = rest.len().min(*max as usize);
                        let n = rest[..lim]
                            .iter()
                            .position(|&b| !has(set, b))
                            .unwrap_or(lim);
                        spend(allowance, n / 8)?;
                        let min = *min as usize;
                        if n < min {
                            return Ok(false);
                        }
                        if !give_back {
                            p += n;
                            continue;
                        }
                        // PERF: before a literal, only the places that hold its first byte (`.*`
                        // then `user=root`: one search back, not a compare at every byte).
                        if let Some(Step::Lit(lit)) = steps.get(i + 1) {
                            let (Some(&first), Some(here)) = (lit.first(), rest.get(min..)) else {
                                return Ok(false);
                            };
                            let mut end = (n + 1 - min).min(here.len());
                            while let Some(k) = memchr::memrchr(first, &here[..end]) {
                                spend(allowance, 1)?;
                                if self.walk(
                                    &steps[i + 1..],
                                    then,
                                    text,
                                    p + min + k,
                                    allowance,
                                    depth + 1,
                                )? {
                                    return Ok(true);
                                }
                                end = k;
                            }
                            return Ok(false);
                        }
                        for k in (min..=n).rev() {
                            // PERF: only where what follows may start (`.*` then `[eE]rror` in a
                            // rule ignoring case: a nested walk at every byte before).
                            if let Some(after) = after {
                                if !rest.get(k).is_some_and(|&b| has(after, b)) {
                                    continue;
                                }
                            }
                            spend(allowance, 1)?;
                            if self.walk(
                                &steps[i + 1..],
                                then,
                                text,
                                p + k,
                                allowance,
                                depth + 1,
                            )? {
                                return Ok(true);
                            }
                        }
                        return Ok(false);
                    }
                    Step::Alt(branches) => {
                        // PERF: only the branches that may start with the next byte are walked,
                        // and when that is only an empty one (an optional group not there), the
                        // walk goes on here instead of nesting one.
                        let live =
                            |b: &&Branch| b.any || rest.first().is_some_and(|&c| has(&b.first, c));
                        let mut live_ones = branches.iter().filter(live);
                        let (Some(one), more) = (live_ones.next(), live_ones.next()) else {
                            return Ok(false);
                        };
                        if more.is_none() && one.steps.is_empty() {
                            continue;
                        }
                        let after = Then {
                            steps: &steps[i + 1..],
                            next: then,
                        };
                        for b in branches.iter().filter(live) {
                            spend(allowance, 1)?;
                            if self.walk(&b.steps, Some(&after), text, p, allowance, depth + 1)? {
                                return Ok(true);
                            }
                        }
                        return Ok(false);
                    }
                    Step::Loop(body) => {
                        // Another copy of the body (and the loop again after it), else on.
                        let again = Then {
                            steps: &steps[i..],
                            next: then,
                        };
                        spend(allowance, 1)?;
                        if self.walk(body, Some(&again), text, p, allowance, depth + 1)? {
                            return Ok(true);
                        }
                    }
                }
            }
            match then {
                Some(t) => (steps, then) = (t.steps, t.next),
                None => return Ok(!self.end || p == text.len()),
            }
            continue 'sequence;
        }
    }

    /// The answer of the rule's automaton (a walk gave up). Never a match when it cannot be
    /// built (it was, as part of its group's, for every rule whose group ever ran).
    #[cold]
    #[inline(never)]
    fn by_automaton(&self, text: &[u8]) -> bool {
        let re = self.fallback.get_or_init(|| {
            meta::Builder::new()
                .configure(super::base_config().auto_prefilter(false))
                .build_from_hir(&self.hir)
                .ok()
        });
        re.as_ref().is_some_and(|re| re.is_match(text))
    }
}

/// Whether `text` starts with `lit`. PERF: compared inline, 8 bytes at a time (a call to
/// `memcmp` per literal was a third of the walks' time with Debian's 2,101 rules).
#[inline(always)]
fn starts_with(text: &[u8], lit: &[u8]) -> bool {
    let Some(t) = text.get(..lit.len()) else {
        return false;
    };
    let word = |s: &[u8]| s.first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
    let (mut a, mut b) = (t, lit);
    while let (Some(x), Some(y)) = (word(a), word(b)) {
        if x != y {
            return false;
        }
        (a, b) = (&a[8..], &b[8..]);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Whether `text` starts with `lit` compared through `mask` (see [`Step::Fold`]), 8 bytes at
/// a time.
#[inline(always)]
fn starts_with_folded(text: &[u8], lit: &[u8], mask: &[u8]) -> bool {
    let Some(t) = text.get(..lit.len()) else {
        return false;
    };
    let word = |s: &[u8]| s.first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
    let (mut a, mut b, mut m) = (t, lit, mask);
    while let (Some(x), Some(y), Some(z)) = (word(a), word(b), word(m)) {
        if x | z != y {
            return false;
        }
        (a, b, m) = (&a[8..], &b[8..], &m[8..]);
    }
    a.iter().zip(b).zip(m).all(|((x, y), z)| x | z == *y)
}

/// Take `n` from the walk's allowance, or give up.
#[inline(always)]
fn spend(allowance: &mut usize, n: usize) -> Result<(), GaveUp> {
    *allowance = allowance.checked_sub(n).ok_or(GaveUp)?;
    Ok(())
}

/// Where a chain not anchored whose first step is not a literal is walked from (`first`: the
/// bytes a match may start with, when known): at those bytes found by `memchr` (three at
/// most), else at the rarer in log text of a set of them and a pivot (a later literal or
/// single byte of one to three values), when its chance is at most [`MAX_START_CHANCE`].
fn start_at(first: Option<&ByteSet>, steps: &[Step]) -> Option<Start> {
    let bytes = |set: &ByteSet| (0..=255u8).filter(|&b| has(set, b)).collect::<Vec<u8>>();
    if let Some(set) = first {
        let b = bytes(set);
        if (1..=3).contains(&b.len()) {
            return Some(Start::Bytes(b.into()));
        }
    }
    let chance = super::gate::chance_of;
    let set_chance = first.map_or(f64::INFINITY, chance);
    // The rarest pivot: a literal's chance taken as its bytes' together.
    let pivot = steps
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(k, s)| match s {
            Step::Lit(l) => Some((
                k,
                l.iter().map(|&b| chance(&fold_set(b, 0))).product::<f64>(),
            )),
            Step::Fold { bytes, mask } => {
                let at = |(&b, &m): (&u8, &u8)| chance(&fold_set(b, m));
                Some((k, bytes.iter().zip(mask.iter()).map(at).product::<f64>()))
            }
            Step::Run {
                set,
                min: 1,
                max: 1,
                ..
            } if (1..=3).contains(&bytes(set).len()) => Some((k, chance(set))),
            _ => None,
        })
        .min_by(|a, b| a.1.total_cmp(&b.1));
    match pivot {
        Some((k, c)) if c < set_chance && c <= MAX_START_CHANCE => {
            let find = match &steps[k] {
                Step::Lit(l) => Find::Lit(Box::new(memchr::memmem::Finder::new(l).into_owned())),
                Step::Run { set, .. } => Find::Bytes {
                    bytes: bytes(set).into(),
                    back: 0,
                },
                Step::Fold { bytes: b, mask } => {
                    let set = |(&b, &m): (&u8, &u8)| fold_set(b, m);
                    let back = super::gate::rarest_place(b.iter().zip(mask.iter()).map(set));
                    let (Some(&at), Some(&m)) = (b.get(back), mask.get(back)) else {
                        return None;
                    };
                    Find::Bytes {
                        bytes: bytes(&fold_set(at, m)).into(),
                        back,
                    }
                }
                _ => return None,
            };
            Some(pivot_at(k, find, steps))
        }
        _ if set_chance <= MAX_START_CHANCE => {
            let mut table = Box::new([false; 256]);
            for b in first.map(bytes).unwrap_or_default() {
                table[usize::from(b)] = true;
            }
            Some(Start::Set(table))
        }
        _ => None,
    }
}

/// A start at pivot `k` of `steps`, found by `find`: the steps before it reversed, walked
/// back from its place.
fn pivot_at(k: usize, find: Find, steps: &[Step]) -> Start {
    let mut back = reversed(steps.get(..k).unwrap_or(steps));
    fix(
        &mut back,
        Follow {
            bytes: ByteSet::default(),
            end: true,
        },
    );
    let before = Box::new(Chain {
        steps: back.into_boxed_slice(),
        end: false,
        start: Start::Anchored,
        hir: Hir::empty(),
        fallback: OnceLock::new(),
    });
    Start::Pivot {
        at: k,
        find,
        before,
    }
}

/// `text` backwards into `out`. PERF: 8 bytes a step (a byte at a time was more than the
/// walks it was made for: sagan-rules' `(?i)\d+ \S+ \d+ Connect`, PERF.md "forty-ninth run").
fn reverse_into(out: &mut Vec<u8>, text: &[u8]) {
    out.clear();
    out.reserve(text.len());
    let mut chunks = text.rchunks_exact(8);
    for c in &mut chunks {
        if let Some(w) = c.first_chunk::<8>() {
            out.extend_from_slice(&u64::from_le_bytes(*w).swap_bytes().to_le_bytes());
        }
    }
    out.extend(chunks.remainder().iter().rev());
}

/// `steps` backwards: what matches them reversed matches the result.
fn reversed(steps: &[Step]) -> Vec<Step> {
    steps
        .iter()
        .rev()
        .map(|s| match s {
            Step::Lit(l) => Step::Lit(l.iter().rev().copied().collect()),
            Step::Fold { bytes, mask } => Step::Fold {
                bytes: bytes.iter().rev().copied().collect(),
                mask: mask.iter().rev().copied().collect(),
            },
            Step::Run { .. } => s.clone(),
            Step::Alt(b) => Step::Alt(
                b.iter()
                    .map(|b| Branch::of(reversed(&b.steps).into_boxed_slice()))
                    .collect(),
            ),
            Step::Loop(body) => Step::Loop(reversed(body).into_boxed_slice()),
        })
        .collect()
}

/// A part of the flattened tree.
enum Part {
    Start,
    End,
    Step(Step),
}

/// The parts of `h` in order, or None when it is not a chain's shape. `top`: `h` is the rule
/// itself or a part of its top concatenation (where `^` and `$` may be).
fn flatten(h: &Hir, out: &mut Vec<Part>, top: bool) -> Option<()> {
    if out.len() > MAX_STEPS {
        return None;
    }
    match h.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => out.push(Part::Step(Step::Lit(l.0.clone()))),
        HirKind::Class(c) => out.push(Part::Step(run(set_of(c)?, 1, 1))),
        HirKind::Look(Look::Start) if top => out.push(Part::Start),
        HirKind::Look(Look::End) if top => out.push(Part::End),
        HirKind::Look(_) => return None,
        HirKind::Capture(c) => flatten(&c.sub, out, top)?,
        HirKind::Concat(v) => {
            for part in v {
                flatten(part, out, top)?;
            }
        }
        HirKind::Alternation(v) => {
            let branches = v.iter().map(|b| sequence(b).map(Branch::of));
            let branches = branches.collect::<Option<Vec<_>>>()?;
            out.push(Part::Step(Step::Alt(branches.into())));
        }
        HirKind::Repetition(r) => {
            let max = r.max.unwrap_or(u32::MAX);
            let one_byte = match r.sub.kind() {
                HirKind::Class(c) => Some(set_of(c)?),
                HirKind::Literal(l) if l.0.len() == 1 => {
                    let mut s = ByteSet::default();
                    add(&mut s, l.0[0]);
                    Some(s)
                }
                _ => None,
            };
            match one_byte {
                Some(set) => {
                    if max > 0 {
                        out.push(Part::Step(run(set, r.min, max)));
                    }
                }
                // `X{m,n}`: `m` copies of `X`, then `(X(X…)?)?` for the other `n - m`.
                // `X{m,n}`: `m` copies of `X`, then `(X(X…)?)?` for the other `n - m`; `X{m,}`:
                // `m` copies, then a loop of `X` (one that takes a byte at least: a loop of what
                // may take nothing is left to the automaton). Never more than `MAX_STEPS` steps
                // written out, nor loops nested deeper than `MAX_LOOPS`.
                None if r.min <= MAX_COPIES && max.min(r.min + 1) <= MAX_COPIES + 1 => {
                    let x = sequence(&r.sub)?;
                    let copies = if r.max.is_some() { max } else { r.min + 1 };
                    if size(&x).saturating_mul(copies.max(1) as usize) > MAX_STEPS
                        || loops(&x) >= MAX_LOOPS
                    {
                        return None;
                    }
                    for _ in 0..r.min {
                        out.extend(x.iter().cloned().map(Part::Step));
                    }
                    match r.max {
                        Some(max) if max > r.min => {
                            out.push(Part::Step(optional(&x, max - r.min)));
                        }
                        Some(_) => {}
                        None if least(&x) == 0 => return None,
                        None => out.push(Part::Step(Step::Loop(x))),
                    }
                }
                None => return None,
            }
        }
    }
    Some(())
}

/// How deep loops nest in `steps` (building a chain works through a loop's body twice).
fn loops(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Alt(b) => b.iter().map(|b| loops(&b.steps)).max().unwrap_or(0),
            Step::Loop(b) => 1 + loops(b),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// The fewest bytes `steps` take.
fn least(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Lit(l) => l.len(),
            Step::Fold { bytes, .. } => bytes.len(),
            Step::Run { min, .. } => *min as usize,
            Step::Alt(b) => b.iter().map(|b| least(&b.steps)).min().unwrap_or(0),
            Step::Loop(_) => 0,
        })
        .fold(0, usize::saturating_add)
}

/// Up to `n` copies of `x` (`n` ≥ 1): `(x(x…)?)?`.
fn optional(x: &[Step], n: u32) -> Step {
    let mut once = x.to_vec();
    if n > 1 {
        once.push(optional(x, n - 1));
    }
    let branches = [
        Branch::of(once.into_boxed_slice()),
        Branch::of(Box::default()),
    ];
    Step::Alt(branches.into())
}

/// The steps of a branch (no `^` or `$` in it).
fn sequence(h: &Hir) -> Option<Box<[Step]>> {
    let mut parts = Vec::new();
    flatten(h, &mut parts, false)?;
    let mut steps = Vec::new();
    for part in parts {
        match part {
            Part::Step(s) => push(&mut steps, s),
            Part::Start | Part::End => return None,
        }
    }
    Some(steps.into())
}

/// How many steps `steps` hold, their branches' included, a literal counted as a step per 8
/// bytes (copies of a counted group join into one literal: `(((ab){16}c){16}d){16}`).
fn size(steps: &[Step]) -> usize {
    steps
        .iter()
        .map(|s| match s {
            Step::Alt(b) => 1 + b.iter().map(|b| size(&b.steps)).sum::<usize>(),
            Step::Loop(b) => 1 + size(b),
            Step::Lit(l) => 1 + l.len() / 8,
            Step::Fold { bytes, .. } => 1 + bytes.len() / 8,
            Step::Run { .. } => 1,
        })
        .fold(0, usize::saturating_add)
}

/// A run of `set`; a run of exactly one byte value, that many copies of it as a literal; one
/// letter in either case (`(?i)a`), a literal compared ignoring case.
fn run(set: ByteSet, min: u32, max: u32) -> Step {
    let count: u32 = set.iter().map(|w| w.count_ones()).sum();
    if count == 1 && min == max && min <= 64 {
        if let Some(b) = (0..=255u8).find(|&b| has(&set, b)) {
            return Step::Lit(vec![b; min as usize].into());
        }
    }
    if count == 2 && min == 1 && max == 1 {
        let pair = |c: &u8| has(&set, *c) && has(&set, c.to_ascii_uppercase());
        if let Some(lower) = (b'a'..=b'z').find(pair) {
            return Step::Fold {
                bytes: Box::new([lower]),
                mask: Box::new([0x20]),
            };
        }
    }
    Step::Run {
        set,
        min,
        max,
        give_back: false,
        after: None,
    }
}

/// The bytes a [`Step::Fold`] may start with.
fn fold_first(bytes: &[u8], mask: &[u8]) -> ByteSet {
    match (bytes.first(), mask.first()) {
        (Some(&b), Some(&m)) => fold_set(b, m),
        _ => ByteSet::default(),
    }
}

/// The bytes a place of a [`Step::Fold`] holding `b` through mask byte `m` matches.
fn fold_set(b: u8, m: u8) -> ByteSet {
    super::gate::case_set(b, m != 0)
}

/// Append `s` to `steps`, joining adjacent literals (and a literal beside one compared
/// ignoring case into one such).
fn push(steps: &mut Vec<Step>, s: Step) {
    let parts = |s: &Step| match s {
        Step::Lit(b) => Some((b.to_vec(), vec![0u8; b.len()])),
        Step::Fold { bytes, mask } => Some((bytes.to_vec(), mask.to_vec())),
        _ => None,
    };
    let folds = |s: Option<&Step>| matches!(s, Some(Step::Fold { .. }));
    if folds(Some(&s)) || folds(steps.last()) {
        if let (Some(last), Some((b, m))) = (steps.last_mut(), parts(&s)) {
            if let Some((mut bytes, mut mask)) = parts(last) {
                bytes.extend(b);
                mask.extend(m);
                *last = Step::Fold {
                    bytes: bytes.into(),
                    mask: mask.into(),
                };
                return;
            }
        }
    }
    if let (Some(Step::Lit(a)), Step::Lit(b)) = (steps.last_mut(), &s) {
        let mut joined = a.to_vec();
        joined.extend_from_slice(b);
        *a = joined.into();
        return;
    }
    if let Step::Lit(b) = &s {
        if b.is_empty() {
            return;
        }
    }
    steps.push(s);
}

/// What may follow a place in a chain: the bytes it may start with, and whether it may get
/// to the rule's end without taking one.
#[derive(Clone, Copy)]
struct Follow {
    bytes: ByteSet,
    end: bool,
}

/// Set each run's `give_back` and each branch's first bytes in `steps`, followed by `follow`;
/// returns what may follow the place before `steps`.
fn fix(steps: &mut [Step], follow: Follow) -> Follow {
    let mut next = follow;
    for step in steps.iter_mut().rev() {
        next = match step {
            Step::Lit(l) => {
                let mut bytes = ByteSet::default();
                if let Some(&b) = l.first() {
                    add(&mut bytes, b);
                }
                Follow { bytes, end: false }
            }
            Step::Fold { bytes, mask } => Follow {
                bytes: fold_first(bytes, mask),
                end: false,
            },
            Step::Run {
                set,
                min,
                max,
                give_back,
                after,
            } => {
                // (A run followed by the rule's end gives nothing back: any length that gets
                // there would do, or with `$` only the longest.)
                *give_back = min != max && set.iter().zip(&next.bytes).any(|(a, b)| a & b != 0);
                *after = (*give_back && !next.end).then(|| Box::new(next.bytes));
                if *min > 0 {
                    Follow {
                        bytes: *set,
                        end: false,
                    }
                } else {
                    Follow {
                        bytes: union(set, &next.bytes),
                        end: next.end,
                    }
                }
            }
            Step::Alt(branches) => {
                let mut all = Follow {
                    bytes: ByteSet::default(),
                    end: false,
                };
                for b in branches.iter_mut() {
                    let f = fix(&mut b.steps, next);
                    (b.first, b.any) = (f.bytes, f.end);
                    all = Follow {
                        bytes: union(&all.bytes, &f.bytes),
                        end: all.end || f.end,
                    };
                }
                all
            }
            Step::Loop(body) => {
                // After a copy comes another copy or what follows the loop. The body takes a
                // byte at least: its first bytes do not depend on what follows it.
                let none = Follow {
                    bytes: ByteSet::default(),
                    end: false,
                };
                let first = fix(body, none).bytes;
                let after = Follow {
                    bytes: union(&first, &next.bytes),
                    end: next.end,
                };
                fix(body, after);
                after
            }
        };
    }
    next
}

fn union(a: &ByteSet, b: &ByteSet) -> ByteSet {
    std::array::from_fn(|i| a[i] | b[i])
}

/// The bytes of a class; None for a class of characters beyond ASCII (each a sequence of
/// bytes: regex-syntax makes a class of `(a|b)`, whatever the mode).
fn set_of(c: &Class) -> Option<ByteSet> {
    let mut s = ByteSet::default();
    match c {
        Class::Bytes(c) => {
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    add(&mut s, b);
                }
            }
        }
        Class::Unicode(c) => {
            for r in c.ranges() {
                let (Ok(a), Ok(z)) = (u8::try_from(r.start()), u8::try_from(r.end())) else {
                    return None;
                };
                if !z.is_ascii() {
                    return None;
                }
                for b in a..=z {
                    add(&mut s, b);
                }
            }
        }
    }
    Some(s)
}

fn add(s: &mut ByteSet, b: u8) {
    s[usize::from(b >> 6)] |= 1 << (b & 63);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::syntax::{for_existence, parse_regex};

    fn chain(p: &str) -> Option<Chain> {
        let h = parse_regex(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        Chain::of(&for_existence(&h))
    }

    fn regex(p: &str) -> regex::bytes::Regex {
        regex::bytes::Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    #[test]
    fn a_chain_decides_exactly_what_the_regex_does() {
        let rules = [
            r"^\w{3} [ :[:digit:]]{11} [._[:alnum:]-]+ sshd\[[0-9]+\]: Connection closed by [.:[:xdigit:]]+ \[preauth\]$",
            r"^(\w{3} [ :[:digit:]]{11}|[0-9T:.+-]{32}) [._[:alnum:]-]+ kernel: (usb|pci) [0-9]+(-[0-9]+)?: (reset|new) device$",
            r"^(\w{3} [ :[:digit:]]{11}|[0-9T:.+-]{32}) [._[:alnum:]-]+ sshd\[[0-9]+\]: Received disconnect from [:.[:xdigit:]]+(: | port [0-9]{1,5}:)11: (Bye Bye|disconnected by user)$",
            r"^[a-z]+ [0-9]+$",
            r"^ab+c",
            r"^a[0-9]{2,4}x",
            r"^x(ab){3}y$",
            r"^[0-9]+[a-z]+$",
            r"^(?i)error: [^ ]+ failed",
            r"^a*b",
            r"^(a|ab)c",
            r"^x(y)?[0-9]+$",
            r"^[a-z]+(1|2)?:",
            r"^[a-z]+[a-z0-9]",
            r"^a.*b$",
            r"^[a-z]+(1|b)",
            r"^[a-z]+(1)?[a-z]",
            r"^[0-9]+[0-9a-f]*x",
            r"sshd: x[0-9]+ y",
            r"pam_unix\(\S+\): auth(entication)? failure;.* user=root$",
            r"[iI](llegal|nvalid) user .*? from [0-9.]+( port [0-9]+){0,2}$",
            r"[12]+ x",
            r"^(ab)+c",
            r"^x( [a-z]+[0-9]*)*$",
            r"^a(:[0-9]+|b)*:1",
            r"(?i)sshd: x",
        ];
        let lines: &[&[u8]] = &[
            b"Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 212.47.254.145 [preauth]",
            b"Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 212.47.254.145 [preauth] ",
            b"Dec 10 06:55:46 Lab SZ sshd[24200]: Connection closed by 1.2.3.4 [preauth]",
            b"Dec 10 06:55:46 LabSZ kernel: usb 1-1: reset device",
            b"2024-01-02T03:04:05.123456+01:00 host kernel: pci 12: new device",
            b"2024-01-02T03:04:05.123456+01:0 host kernel: pci 12: new device",
            b"Dec 10 06:55:46 LabSZ kernel: usb 1-: reset device",
            b"Dec 10 06:55:46 LabSZ sshd[1]: Received disconnect from 1.2.3.4: 11: Bye Bye",
            b"Dec 10 06:55:46 LabSZ sshd[1]: Received disconnect from ::1: 11: Bye Bye",
            b"Dec 10 06:55:46 LabSZ sshd[1]: Received disconnect from fe80::1 port 22:11: disconnected by user",
            b"Dec 10 06:55:46 LabSZ sshd[1]: Received disconnect from fe80::1 port 222222:11: Bye Bye",
            b"abc 12",
            b"abc 12x",
            b"abbbbc",
            b"ac",
            b"a123x",
            b"a12345x",
            b"a1x",
            b"xabababy",
            b"xababy",
            b"12ab",
            b"12ab3",
            b"ERROR: disk failed",
            b"error: disk  failed",
            b"aaab",
            b"b",
            b"",
            b"abc",
            b"xy12",
            b"x12",
            b"xy",
            b"abc1:",
            b"abc:",
            b"abc12:",
            b"abcb",
            b"a b",
            b"123abx",
            b"1x",
            b"sshd: x sshd: x12 y",
            b"sshd: x12 sshd: x1 y",
            b"pam_unix(sshd:auth): authentication failure; logname= uid=0 user=root",
            b"pam_unix(sshd:auth): auth failure; user=rootx user=root",
            b"pam_unix(): auth failure; user=root",
            b"Invalid user a from 1.2.3.4 port 22",
            b"illegal user illegal user b from 1.2.3.4",
            b"Illegal user b from 1.2.3.4 port 1 port 2 port 3",
            b"a 12 x",
            b"12 12x",
            b"ababc",
            b"abac",
            b"x abc12 de",
            b"x abc12 de ",
            b"x",
            b"a:12b:1",
            b"a:12b:",
        ];
        for p in rules {
            let Some(c) = chain(p) else {
                panic!("{p} is a chain");
            };
            let re = regex(p);
            for l in lines {
                let text = String::from_utf8_lossy(l);
                assert_eq!(c.matches(l), re.is_match(l), "{p} on {text:?}");
            }
        }
    }

    #[test]
    fn folded_literals_compare_letters_in_either_case_only() {
        let c = chain("(?i)a[x]Y:1 b").unwrap_or_else(|| panic!("no chain"));
        assert!(
            matches!(&*c.steps, [Step::Fold { bytes, .. }] if &**bytes == b"axy:1 b"),
            "{:?}",
            c.steps
        );
        let (lit, mask) = (
            b"abc:de1[fghij",
            b"\x20\x20\x20\0\x20\x20\0\0\x20\x20\x20\x20\x20",
        );
        assert!(starts_with_folded(b"AbC:dE1[fGhIjzz", lit, mask));
        for i in 0..lit.len() {
            // Every byte that is not the same letter in either case fails, at every place.
            for b in 0..=255u8 {
                let mut t = lit.to_vec();
                t[i] = b;
                let same = b == lit[i] || (mask[i] != 0 && b == lit[i].to_ascii_uppercase());
                assert_eq!(starts_with_folded(&t, lit, mask), same, "{i} {b}");
            }
        }
        assert!(!starts_with_folded(b"abc", lit, mask));
    }

    #[test]
    fn a_line_is_reversed_whole() {
        let mut out = vec![7];
        for n in 0..40 {
            let text: Vec<u8> = (0..n).collect();
            reverse_into(&mut out, &text);
            let want: Vec<u8> = text.iter().rev().copied().collect();
            assert_eq!(out, want, "{n}");
        }
    }

    #[test]
    fn starts_with_compares_every_byte() {
        let text: Vec<u8> = (0..40u8).collect();
        for n in 0..=41 {
            let mut lit: Vec<u8> = (0..n).collect();
            assert_eq!(starts_with(&text, &lit), n <= 40, "{n}");
            for i in 0..lit.len() {
                lit[i] ^= 1;
                assert!(!starts_with(&text, &lit), "{n} {i}");
                lit[i] ^= 1;
            }
        }
    }

    #[test]
    fn rules_a_walk_cannot_take_keep_their_automaton() {
        for p in [
            r"^a\bb",    // a look other than the ends
            r"^a$b",     // something after `$`
            r"(?m)^a",   // multi-line
            r"^(a|^b)c", // `^` in a branch
            r"^(a?)+c",  // a loop of what may take nothing
            // Not anchored, a common class of more than three bytes first, no rare pivot.
            r"[a-z]+ [a-z]",
            r"\d+[ :]\d",
            r"[a-z]{2} [a-z]",
        ] {
            assert!(chain(p).is_none(), "{p}");
        }
    }

    #[test]
    fn chains_not_anchored_start_at_a_rare_set_or_a_pivot() {
        // (rule, how it is walked)
        let rules = [
            (r"\d+ \S+ \d+ Connect", "pivot"),
            (r"(?i)\d+ \S+ \d+ Connect", "pivot"),
            (r"[a-z]+ sshd\[\d+\]", "pivot"),
            (r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+ ok", "pivot"),
            (r"\w+(ab|cd)*x?[yz]{2,} done", "pivot"),
            // Its pivot, a literal found by `memmem`, is kept over a walk from the end.
            (r"(\d+[a-f]|[a-f]{2})+ failed$", "pivot"),
            (r"(?i)connect\s+\S+$", "end"),
            (r"[a-z]+ sshd\[\d+\]: \S+$", "pivot"),
            (r"\d+\s+\d+$", "end"),
            (r"(?i)tion\s+(\w+|-)\s*$", "end"),
            (r"\s+history\s+(-\w+\s+)*-\w*(c|d|w)", "pivot"),
            (r"\d+abc(de|xy)+\d+ sshd\[", "pivot"),
            (r"(?:none|local|virtual|maildrop|avcheck)", "set"),
            (r"(?:vx|wy|qz|jk)+\d", "set"),
        ];
        let pieces: [&[u8]; 28] = [
            b"12", b" ", b"abc", b"Connect", b"cONNECT", b"sshd[", b"]", b"7", b".", b":", b"ok",
            b"ab", b"cd", b"x", b"yz", b"done", b"failed", b"history", b"-", b"local", b"vx",
            b"qz", b"1 a 2 ", b"1.2.3:4", b"  ", b"ms", b"TION", b"\t",
        ];
        let samples: [&[u8]; 14] = [
            b"a connect  x:1",
            b"host sshd[42]: ok",
            b"took 12 ms",
            b"action\tdone ",
            b"12 a-b 7 Connect",
            b"1 x 2 cOnNeCt",
            b"host sshd[42]",
            b"10.0.0.1:80 ok",
            b"w9abcdxyz done",
            b"7a3cff failed",
            b" history  -ab -c",
            b"maildrop",
            b"vxqz7",
            b"7abcdexy12 sshd[",
        ];
        let mut next = crate::rules::xorshift(0x2545_f491_4f6c_dd1d);
        for (p, kind) in rules {
            let c = chain(p).unwrap_or_else(|| panic!("{p}: no chain"));
            let got = match c.start {
                Start::Pivot {
                    find: Find::End, ..
                } => "end",
                Start::Pivot { .. } => "pivot",
                Start::Set(_) => "set",
                _ => "other",
            };
            assert_eq!(got, kind, "{p}");
            let re = regex(&format!("(?-u){p}"));
            let mut hits = 0;
            for _ in 0..20_000 {
                let n = (next() % 12) as usize;
                let mut line: Vec<u8> = (0..n)
                    .flat_map(|_| pieces[(next() % 28) as usize].iter().copied())
                    .collect();
                // Now and then a line a rule matches (or nearly: a byte of it cut), among them.
                if next().is_multiple_of(3) {
                    let mut sample = samples[(next() % 14) as usize].to_vec();
                    if next().is_multiple_of(2) {
                        sample.remove((next() % sample.len() as u64) as usize);
                    }
                    let at = (next() % (line.len() as u64 + 1)) as usize;
                    line.splice(at..at, sample);
                }
                let want = re.is_match(&line);
                let text = String::from_utf8_lossy(&line);
                assert_eq!(c.matches(&line), want, "{p} on {text:?}");
                hits += usize::from(want);
            }
            assert!(hits > 20, "{p}: {hits} matching lines");
        }
    }

    #[test]
    fn rules_whose_chain_would_be_large_are_refused_at_once() {
        // Written out, each would be millions of steps, or a build working through nested
        // loops 2^30 times.
        let nested = format!("^{}x{}c", "(a".repeat(30), "b)*".repeat(30));
        for p in [
            r"^((((ab){0,16}c){0,16}d){0,16}e){0,16}z",
            r"^((((ab){16}c){16}d){16}e){16}z",
            nested.as_str(),
        ] {
            let t = std::time::Instant::now();
            assert!(chain(p).is_none(), "{p}");
            assert!(t.elapsed() < std::time::Duration::from_secs(5), "{p}");
        }
        let Some(c) = chain(r"^((ab)+c)+$") else {
            panic!("two nested loops make a chain");
        };
        assert!(c.matches(b"ababcabc") && !c.matches(b"ababcab"));
    }

    #[test]
    fn a_walk_that_would_take_too_long_is_answered_by_the_automaton() {
        // Each run may give bytes back: walked, 2,000 bytes of `a` would take ~2,000^4 steps.
        let p = r"^a*a*a*a*b$";
        let Some(c) = chain(p) else {
            panic!("{p} is a chain");
        };
        let mut line = vec![b'a'; 2_000];
        assert!(!c.matches(&line));
        line.push(b'b');
        assert!(c.matches(&line));
        let p = r"x[a-z]*[a-z]*[a-z]*y";
        let Some(c) = chain(p) else {
            panic!("{p} is a chain");
        };
        let line = b"x".repeat(3_000);
        assert_eq!(c.matches(&line), regex(p).is_match(&line));
        // A loop of 50,000 copies would nest as many walks: the walk gives up at its depth.
        let p = r"^(ab)*c$";
        let Some(c) = chain(p) else {
            panic!("{p} is a chain");
        };
        let mut line = b"ab".repeat(50_000);
        line.push(b'c');
        assert!(c.matches(&line));
        line.insert(0, b'a');
        assert!(!c.matches(&line));
        // A walk given no allowance: the automaton's answer, either way.
        for p in [r"^a[0-9]+b", r"sshd: [a-z]+ x"] {
            let Some(c) = chain(p) else {
                panic!("{p} is a chain");
            };
            for line in [&b"a12b"[..], b"a12", b"sshd: ab x", b"sshd: a1 x"] {
                assert_eq!(c.matches_within(line, 0), regex(p).is_match(line), "{p}");
            }
        }
    }

    /// Patterns made of literals, classes, runs, alternations, optional groups and anchors
    /// over a small alphabet, each walked on lines over the same alphabet beside the regex
    /// crate's answer.
    #[test]
    fn generated_chains_agree_with_the_regex_crate() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let atoms = [
            "a", "b", ":", "[ab]", "[a:]", "[^a]", ".", r"\d", "1", " ", "[xqz:]", "ax",
        ];
        let quants = ["", "", "", "?", "*", "+", "{1,2}", "{2}", "{0,3}"];
        let counts = ["?", "{2}", "{1,3}", "{0,2}", "*", "+", "{2,}"];
        let (mut walked, mut lines, mut pivots, mut sets, mut folds) = (0, 0, 0, 0, 0);
        for _ in 0..8_000 {
            let mut p = String::new();
            // A third of them ignoring case (letters as literals compared so).
            let folded = next(3) == 0;
            if folded {
                p.push_str("(?i)");
            }
            if next(3) > 0 {
                p.push('^');
            }
            for _ in 0..1 + next(5) {
                match next(6) {
                    0 => {
                        let a = atoms[next(atoms.len() as u64) as usize];
                        let b = atoms[next(atoms.len() as u64) as usize];
                        p.push_str(&format!("({a}{b}|{b})"));
                    }
                    1 => {
                        let a = atoms[next(atoms.len() as u64) as usize];
                        let q = counts[next(counts.len() as u64) as usize];
                        p.push_str(&format!("(:{a}){q}"));
                    }
                    _ => {
                        p.push_str(atoms[next(atoms.len() as u64) as usize]);
                        p.push_str(quants[next(quants.len() as u64) as usize]);
                    }
                }
            }
            if next(3) == 0 {
                p.push('$');
            }
            let Ok(h) = parse_regex(&p) else {
                continue;
            };
            let Some(c) = Chain::of(&for_existence(&h)) else {
                continue;
            };
            walked += 1;
            match c.start {
                Start::Pivot { .. } => pivots += 1,
                Start::Set(_) => sets += 1,
                _ => {}
            }
            folds += usize::from(c.steps.iter().any(|s| matches!(s, Step::Fold { .. })));
            let re = regex(&p);
            for _ in 0..40 {
                let bytes: &[u8] = if folded { b"ab:1 xAX" } else { b"ab:1 x" };
                let n = bytes.len() as u64;
                let line: Vec<u8> = (0..next(14)).map(|_| bytes[next(n) as usize]).collect();
                lines += 1;
                let text = String::from_utf8_lossy(&line);
                assert_eq!(c.matches(&line), re.is_match(&line), "{p} on {text:?}");
            }
        }
        assert!(walked > 4_000, "{walked} chains");
        // Walked from a later step, or from a set of first bytes (`[^a]`, `.` and digits
        // are too common to start from; `[xqz:]` is not).
        assert!(pivots > 200 && sets > 20, "{pivots} pivots, {sets} sets");
        assert!(folds > 500, "{folds} chains with letters ignoring case");
        assert!(lines > 160_000);
    }
}
