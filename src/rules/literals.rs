//! Required literals: the strings one of which every match of a rule contains.
//!
//! Role: [`rule_needles`] picks, per rule, the literal set the whole-buffer search
//! (`litscan`) looks for — the best of the rule's prefix literals and of its required inner
//! parts, case-folded for `(?i)` rules — by a quality that prefers fewer, longer, rarer literals.
//! Invariants: a line that the rule matches holds one of its literals (so a line without any is
//! never confirmed); at most [`MAX_RULE_NEEDLES`] literals per rule ([`MAX_UNION_NEEDLES`]
//! long ones from an alternation) and [`MAX_NEEDLES`] in all.

#[allow(unused_imports)]
use super::*;
use regex_syntax::hir::literal::Seq;

/// A rule's literals and whether they are compared ignoring ASCII case (lower case then).
pub(super) type RuleLiterals = (Vec<Vec<u8>>, bool);

/// Most literals handed to the prefilter.
pub(super) const MAX_NEEDLES: usize = 50_000;
/// Most literals one rule may contribute (a `(?i)` word has 2^n case variants: beyond this, the
/// extractor settles for shorter prefixes), and the shortest useful literal.
pub(super) const MAX_RULE_NEEDLES: usize = 16;
/// Most literals an alternation's branches may give a rule (fail2ban's `apache-badbots`: 95
/// user agents, where the rule's other required literal is `HTTP`, in every line of a web log;
/// sagan-rules' 29 user names between spaces, where the rule has no other).
pub(super) const MAX_UNION_NEEDLES: usize = 128;
pub(super) const MIN_NEEDLE_LEN: usize = 3;
/// The shortest literal the literal-first search takes: 4-byte windows at 4 offsets (its
/// fastest stride); a few 6-byte ones are taken too (a window starting a byte before them:
/// `litscan::MAX_OVERHANG_KEYS`). Rules with shorter literals go to the DFA part, whose regex
/// then searches for them with its own literal prefilter.
// PERF: rules100 has one 6-byte rule (`\[(crit|alert|emerg)\]`); with it in the search at
// stride 2 the search was scalar (1.5 GB/s alone); in the DFA part it cost a Teddy pass of its
// own (4-5 % of the pipe path's CPU); with an overhang window neither (see PERF.md).
pub(super) const FAST_NEEDLE_LEN: usize = 7;
/// The shortest literal the literal search may take at its full stride (6-byte ones with a
/// window before them, when few: see [`FAST_NEEDLE_LEN`]).
pub(super) const SEARCH_NEEDLE_LEN: usize = FAST_NEEDLE_LEN - 1;
/// Literals this long, one or two of them, are not bettered by folding case.
const GOOD_NEEDLE_LEN: usize = 12;

/// The longest literal the extractor keeps (longer ones are cut to their first this many bytes).
const MAX_LITERAL_LEN: usize = 32;

fn extractor() -> Extractor {
    let mut ex = Extractor::new();
    ex.kind(ExtractKind::Prefix)
        .limit_class(EXTRACTED_CLASS_LEN)
        .limit_literal_len(MAX_LITERAL_LEN)
        .limit_total(MAX_RULE_NEEDLES);
    ex
}

/// The literals of an extracted prefix sequence, if they form a small finite set.
fn finite(seq: &Seq) -> Option<Vec<Vec<u8>>> {
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > MAX_RULE_NEEDLES {
        return None;
    }
    Some(merged(lits.iter().map(|l| l.as_bytes().to_vec()).collect()))
}

/// `lits`, or the same literals cut to their first `k` bytes where cutting makes fewer of
/// them, whichever [`quality`] prefers (a prefix of a literal a match holds is held too).
/// PERF: a class after a literal fans it out (`su(\[[0-9]+\])?: ` begins with " su[0" to
/// " su[9" and " su: "), and eleven literals lost to the rule's three bytes " su", which
/// every " success" holds, where " su[" and " su: " are rare: 10,010 lines per 64 MiB of
/// loghub hold " su", none " su[" or " su: "; Debian's 2,101 rules' candidate lines 106,798
/// -> 101,657 and matching instructions -3.5 % with the cut.
fn merged(mut lits: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    // Literals the literal search takes at its full stride are left whole: their count costs
    // little there, and a cut one joins other rules' groups (sagan-rules' "192.168.0" ..
    // "192.168.9" cut to "192.168.": +19 % matching instructions).
    if lits.len() < 2 || min_len(&lits) >= SEARCH_NEEDLE_LEN {
        return lits;
    }
    // Sorted, a cut keeps the order: equal cuts are neighbours, counted without making them
    // (`Seq::keep_first_bytes` on a copy per length would allocate for every length tried, at
    // every prefix set of a start-up).
    lits.sort_unstable();
    let longest = lits.iter().map(Vec::len).max().unwrap_or(0);
    let mut best: Option<Vec<Vec<u8>>> = None;
    let mut count = lits.len();
    // Never cut to three bytes: a literal that short is as common as its letters, and the
    // count's doublings that `quality` charges would overrate fewer of them (sagan-rules'
    // "10.0" .. "10.9", "172." and "192." would become "10.", "172" and "192").
    for k in (MIN_NEEDLE_LEN + 1..longest).rev() {
        let cut = |l: &Vec<u8>| l.len().min(k);
        let n = 1 + lits
            .windows(2)
            .filter(|w| w[0][..cut(&w[0])] != w[1][..cut(&w[1])])
            .count();
        if n >= count {
            continue;
        }
        count = n;
        let mut fewer: Vec<Vec<u8>> = lits.iter().map(|l| l[..cut(l)].to_vec()).collect();
        fewer.dedup();
        let now = best.as_deref().unwrap_or(&lits);
        if quality(&fewer) > quality(now) {
            best = Some(fewer);
        }
    }
    best.unwrap_or(lits)
}

/// Literals every match of `h` must begin with, if they form a small finite set.
pub(super) fn prefix_literals(h: &Hir) -> Option<Vec<Vec<u8>>> {
    // PERF: a literal is its own prefix, cut as the extractor cuts it (Debian's 2,101 rules
    // asked 92,000 times, half of them on a literal).
    if let HirKind::Literal(hir::Literal(bytes)) = h.kind() {
        return Some(vec![bytes[..bytes.len().min(MAX_LITERAL_LEN)].to_vec()]);
    }
    finite(&extractor().extract(h))
}

/// The prefix sequence of the concatenation of `parts`, as the extractor computes it for a
/// concatenation (each part's sequence crossed onto the ones before until every literal is
/// inexact), from each part's own sequence, extracted once into `seqs` and kept there for
/// the other suffixes and the parts' own literals.
// PERF: in place of cloning each suffix into a new concatenation and extracting it whole
// (Debian's 2,101 rules: 45 M instructions in the clones alone; the part nearest a literal
// extracted up to six times).
fn concat_prefix(ex: &Extractor, parts: &[Hir], seqs: &mut [Option<Seq>]) -> Seq {
    let mut seq = Seq::singleton(hir::literal::Literal::exact(vec![]));
    for (part, cached) in parts.iter().zip(seqs.iter_mut()) {
        if seq.is_inexact() {
            break;
        }
        let mut next = cached.get_or_insert_with(|| ex.extract(part)).clone();
        if seq
            .max_cross_len(&next)
            .is_some_and(|len| len > MAX_RULE_NEEDLES)
        {
            next.make_infinite();
        }
        seq.cross_forward(&mut next);
        seq.keep_first_bytes(MAX_LITERAL_LEN);
    }
    seq
}

/// The shortest literal's length.
pub(super) fn min_len(lits: &[Vec<u8>]) -> usize {
    lits.iter().map(Vec::len).min().unwrap_or(0)
}

/// How good a literal set is as a prefilter: first, literals the literal search may take at its
/// full stride ([`SEARCH_NEEDLE_LEN`] bytes or more: a shorter one goes to a search of its own
/// and, in text full of it, sends every line to confirmation: `HTTP` against 95 user agents);
/// then a longer shortest literal (up to 32 bytes), less
/// a byte for each doubling of the number of literals (`PacketResponder \d+` is better served by
/// "PacketResponder " than by its ten expansions "PacketResponder 0".."9", which cost ten
/// comparisons per hit); then longer literals on average (`R|v1x20`: the literals of `R` and
/// "v1x20" beat the prefixes "WARN " and "v1x20"); then fewer literals.
pub(super) fn quality(lits: &[Vec<u8>]) -> (bool, i64, usize, std::cmp::Reverse<usize>) {
    let doublings = i64::from(usize::BITS - lits.len().leading_zeros());
    let total: usize = lits.iter().map(|l| l.len().min(MAX_LITERAL_LEN)).sum();
    (
        min_len(lits) >= SEARCH_NEEDLE_LEN,
        min_len(lits).min(MAX_LITERAL_LEN) as i64 - doublings,
        total / lits.len().max(1),
        std::cmp::Reverse(lits.len()),
    )
}

pub(super) fn better(a: Option<Vec<Vec<u8>>>, b: Option<Vec<Vec<u8>>>) -> Option<Vec<Vec<u8>>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(match far_rarer(&a, &b) {
            Some(true) => b,
            Some(false) => a,
            None if quality(&b) > quality(&a) => b,
            None => a,
        }),
        (a, b) => a.or(b),
    }
}

/// How many times rarer in log text (the rarity model's estimate) one of two literal sets a
/// rule requires must be for [`better`] to take it whatever their lengths.
const FAR_RARER: f64 = 8.0;

/// Between two literal sets of 4 bytes or more that the same search would take (both of the
/// literal search's full stride, or both not): `Some(true)` when `b` is [`FAR_RARER`] times
/// rarer than `a` by the rarity model, `Some(false)` when `a` is than `b`, else None
/// ([`quality`] decides). A longer literal is not a rarer one: `INFO .*Flags` took "INFO "
/// (every other line of a log) over "Flags", and 300 such rules sent most lines to be
/// confirmed by all of them (PERF.md "fifty-third run").
fn far_rarer(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<bool> {
    let (la, lb) = (min_len(a), min_len(b));
    if la <= MIN_NEEDLE_LEN
        || lb <= MIN_NEEDLE_LEN
        || (la >= SEARCH_NEEDLE_LEN) != (lb >= SEARCH_NEEDLE_LEN)
    {
        return None;
    }
    let (ca, cb) = (
        crate::litscan::literals_chance(a),
        crate::litscan::literals_chance(b),
    );
    if cb * FAR_RARER < ca {
        Some(true)
    } else if ca * FAR_RARER < cb {
        Some(false)
    } else {
        None
    }
}

/// A set of literals such that every match of `h` *contains* one of them (ripgrep's "inner
/// literals"): the prefix literals of `h` or of any suffix of a concatenation, a required
/// literal of any concatenated part, the union over alternation branches. None when no set with
/// literals of at least [`MIN_NEEDLE_LEN`] bytes exists.
pub(crate) fn required_literals(h: &Hir) -> Option<Vec<Vec<u8>>> {
    required_given(h, None)
}

/// [`required_literals`], with `h`'s prefix literals when the caller has them already.
fn required_given(h: &Hir, prefix: Option<Option<Vec<Vec<u8>>>>) -> Option<Vec<Vec<u8>>> {
    match h.kind() {
        // PERF: what can match the empty string or a single byte has no literal of
        // MIN_NEEDLE_LEN bytes: no extraction asked (the answer is the one it would give).
        HirKind::Empty | HirKind::Look(_) | HirKind::Class(_) => return None,
        HirKind::Repetition(r) if r.min == 0 => return None,
        _ => {}
    }
    if let HirKind::Concat(v) = h.kind() {
        return required_in_concat(v, prefix);
    }
    let mut best = prefix.unwrap_or_else(|| prefix_literals(h));
    match h.kind() {
        HirKind::Alternation(v) => {
            let mut union = Vec::new();
            for child in v {
                match required_literals(child) {
                    Some(l) if union.len() + l.len() <= MAX_UNION_NEEDLES => union.extend(l),
                    _ => return best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN),
                }
            }
            // PERF: beyond a rule's usual count too, short ones included: they go to a search
            // of their own (the short literals' or the DFA part's), where the rule would
            // otherwise send the automaton over every byte (sagan-rules' `…| www | lp | bin
            // |…`, 29 words: PERF.md "thirty-ninth run"); `quality` still prefers a better set.
            best = better(best, Some(union));
        }
        HirKind::Repetition(r) if r.min >= 1 => best = better(best, required_literals(&r.sub)),
        // PERF: a group's prefix literals are its contents' (asked once, not twice).
        HirKind::Capture(c) => {
            let inner = required_given(&c.sub, Some(best.clone()));
            best = better(best, inner);
        }
        _ => {}
    }
    best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN)
}

/// [`required_given`] for a concatenation of `v`: the best of its prefix literals, those of
/// each suffix starting with a literal, and each part's required literals.
fn required_in_concat(v: &[Hir], prefix: Option<Option<Vec<Vec<u8>>>>) -> Option<Vec<Vec<u8>>> {
    let ex = extractor();
    let mut seqs: Vec<Option<Seq>> = vec![None; v.len()];
    let mut best = prefix.unwrap_or_else(|| finite(&concat_prefix(&ex, v, &mut seqs)));
    // PERF: only suffixes that start with a literal, and only their next four parts (the
    // prefixes of those are prefixes of the whole suffix's matches; literals are cut at
    // 32 bytes anyway): 1,000 rules spent ~40 ms here cloning every suffix whole.
    // PERF: nor the parts after one that leaves every prefix inexact (`\d+`): the extractor
    // stops there (PERF.md "twenty-sixth run").
    for i in 1..v.len() {
        if matches!(v[i].kind(), HirKind::Literal(_)) {
            let mut end = v.len().min(i + 4);
            if let Some(j) = v[i..end].iter().position(ends_prefixes) {
                end = i + j + 1;
            }
            let lits = finite(&concat_prefix(&ex, &v[i..end], &mut seqs[i..end]));
            best = better(best, lits);
        }
    }
    for (child, seq) in v.iter().zip(&seqs) {
        // A part's prefix literals are those of the sequence already extracted for it.
        best = better(best, required_given(child, seq.as_ref().map(finite)));
    }
    best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN)
}

/// Does every prefix of `h`'s matches end inexact, so that no part after `h` in a concatenation
/// can lengthen the concatenation's prefix literals? A repetition with a minimum and no fixed
/// count (`x+`, `x{2,}`, `x{1,3}`), also inside a group.
fn ends_prefixes(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Repetition(r) => r.min >= 1 && r.max != Some(r.min),
        HirKind::Capture(c) => ends_prefixes(&c.sub),
        _ => false,
    }
}

/// ASCII case folded out of a rule: literals and classes in lower case. A line matching the rule
/// matches the folded rule once lowered, so the folded rule's required literals, compared
/// ignoring case, are required literals of the rule. None for trees with classes of
/// characters beyond ASCII.
pub(super) fn fold_case(h: &Hir) -> Option<Hir> {
    Some(match h.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(hir::Literal(bytes)) => Hir::literal(bytes.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => fold_class(c),
        // An alternation of single letters under `(?i)` (`-r(o|w)`) is made one class of
        // characters by regex-syntax: folded as the byte class it is when all ASCII (such a
        // rule kept 8 case variants of "]: par" instead of "expanded entry: -ro").
        HirKind::Class(Class::Unicode(c)) => fold_class(&c.to_byte_class()?),
        HirKind::Look(look) => Hir::look(*look),
        HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(fold_case(&r.sub)?),
        }),
        HirKind::Capture(c) => fold_case(&c.sub)?,
        HirKind::Concat(v) => fold_concat(v)?,
        HirKind::Alternation(v) => {
            Hir::alternation(v.iter().map(fold_case).collect::<Option<_>>()?)
        }
    })
}

/// A concatenation folded: its literals and the letters in both cases among them (each letter
/// of a `(?i)` rule is a class of its own) gathered into one run of lower-case bytes, the other
/// parts folded one by one. The same tree as folding each part and concatenating them (the
/// concatenation joins adjacent literals anyway).
// PERF: a part per letter was a literal made and then taken apart by the concatenation (two
// allocations and a property computation each): folding was 30 ms of CPU of a cold start with
// Debian's 2,101 rules behind `(?i)`, the costliest step after the parse (PERF.md
// "thirty-second run").
fn fold_concat(v: &[Hir]) -> Option<Hir> {
    let mut parts = Vec::with_capacity(v.len());
    let mut run: Vec<u8> = Vec::new();
    for h in v {
        let letter = match h.kind() {
            HirKind::Class(Class::Bytes(c)) => letter_in_both_cases(c),
            _ => None,
        };
        match (h.kind(), letter) {
            (HirKind::Literal(hir::Literal(bytes)), _) => {
                run.extend(bytes.iter().map(u8::to_ascii_lowercase));
            }
            (_, Some(low)) => run.push(low),
            _ => {
                if !run.is_empty() {
                    parts.push(Hir::literal(std::mem::take(&mut run)));
                }
                parts.push(fold_case(h)?);
            }
        }
    }
    if !run.is_empty() {
        parts.push(Hir::literal(run));
    }
    Some(Hir::concat(parts))
}

/// The lower-case letter when `c` is one ASCII letter in both cases (`[Ee]`).
fn letter_in_both_cases(c: &hir::ClassBytes) -> Option<u8> {
    match c.ranges() {
        [a, b] if a.len() == 1 && b.len() == 1 => {
            let (up, low) = (a.start(), b.start());
            (up.is_ascii_uppercase() && low == up | 0x20).then_some(low)
        }
        _ => None,
    }
}

/// `c` with its upper-case ASCII letters replaced by lower-case ones.
fn fold_class(c: &hir::ClassBytes) -> Hir {
    // PERF: a letter in both cases (each letter of a `(?i)` rule) is the lower-case letter, a
    // literal that the concatenation around it joins to its neighbours: the folded tree of a
    // `(?i)` rule is then a few literals, not a class per letter (Debian's 2,101 rules behind
    // `(?i)`: folding 186 M instructions, and the extraction after it, a part per letter).
    if let Some(low) = letter_in_both_cases(c) {
        return Hir::literal([low]);
    }
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

/// How many letters in both cases as classes of their own (`(?i)e`, `[Ee]`) `h` holds, counted
/// up to `most`.
fn letter_pairs(h: &Hir, most: usize) -> usize {
    let pair = |a: u32, b: u32| a + 0x20 == b && (u32::from(b'A')..=u32::from(b'Z')).contains(&a);
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => match c.ranges() {
            [a, b] if a.len() == 1 && b.len() == 1 => {
                usize::from(pair(u32::from(a.start()), u32::from(b.start())))
            }
            _ => 0,
        },
        HirKind::Class(Class::Unicode(c)) => match c.ranges() {
            [a, b] if a.start() == a.end() && b.start() == b.end() => {
                usize::from(pair(u32::from(a.start()), u32::from(b.start())))
            }
            _ => 0,
        },
        HirKind::Capture(c) => letter_pairs(&c.sub, most),
        HirKind::Repetition(r) => letter_pairs(&r.sub, most),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            let mut n = 0;
            for p in v {
                n += letter_pairs(p, most - n);
                if n >= most {
                    break;
                }
            }
            n
        }
        _ => 0,
    }
}

/// A rule with this many letters in both cases is folded first ([`rule_needles`]).
const FOLD_FIRST_PAIRS: usize = 8;

/// The most bytes a class may hold for the extractor to expand it into literals (its
/// `limit_class`, set in [`extractor`]; [`has_case_pair`] relies on it).
const EXTRACTED_CLASS_LEN: usize = 10;

/// Whether some class holds an ASCII letter in both cases (`(?i)`, `[Cc]`) and, folded, is
/// small enough for the extractor to expand into literals: only then can folding case give
/// better literals through a class. A large class (`\w`, `[[:alnum:]]`, `[A-Za-z0-9._-]`)
/// ends every literal before and after folding alike.
// PERF: not every class with a case pair (Debian's 2,101 rules: 321 rules folded and extracted
// again, 32 M instructions of a cold start, 9 of them getting better literals; PERF.md
// "twenty-ninth run").
pub(super) fn has_case_pair(h: &Hir) -> bool {
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => {
            // Folding takes at most the 26 upper-case letters out.
            let len: usize = c.ranges().iter().map(|r| r.len()).sum();
            if len > EXTRACTED_CLASS_LEN + 26 {
                return false;
            }
            let has = |b: u8| c.ranges().iter().any(|q| q.start() <= b && b <= q.end());
            let mut pair = false;
            let mut folded = 0usize;
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    if b.is_ascii_uppercase() {
                        let lower = has(b | 0x20);
                        pair |= lower;
                        folded += usize::from(!lower);
                    } else {
                        folded += 1;
                    }
                    if folded > EXTRACTED_CLASS_LEN {
                        return false;
                    }
                }
            }
            pair
        }
        HirKind::Class(Class::Unicode(_)) => true,
        HirKind::Repetition(r) => has_case_pair(&r.sub),
        HirKind::Capture(c) => has_case_pair(&c.sub),
        HirKind::Concat(v) => v.iter().any(has_case_pair),
        HirKind::Alternation(v) => case_variants(v) || v.iter().any(has_case_pair),
        _ => false,
    }
}

/// Whether two of an alternation's branches begin with literals that differ only in case
/// (`(Error|error)`, `(gh|GH)\d`, `(Error \d+|error \w+)`): folded, their literals may
/// become one.
fn case_variants(branches: &[Hir]) -> bool {
    fn lead(h: &Hir) -> Option<&[u8]> {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => Some(b),
            HirKind::Capture(c) => lead(&c.sub),
            HirKind::Concat(v) => v.first().and_then(lead),
            _ => None,
        }
    }
    let leads: Vec<&[u8]> = branches.iter().filter_map(lead).collect();
    leads.iter().enumerate().any(|(i, a)| {
        leads[i + 1..].iter().any(|b| {
            let n = a.len().min(b.len());
            a[..n] != b[..n] && a[..n].eq_ignore_ascii_case(&b[..n])
        })
    })
}

/// The literals a rule's matches must contain, and whether they compare ignoring ASCII case:
/// the better of the rule's own required literals and those of its case-folded form (which
/// wins for `(?i)` rules, whose own literals are 2^n case variants of a short piece; not tried
/// when the rule's own are one or two of 12 bytes or more). Literals
/// holding `\n` are left out (no match within a line can contain one). None when neither form
/// has literals of at least `MIN_NEEDLE_LEN` (3) bytes.
pub fn rule_needles(h: &Hir) -> Option<(Vec<Vec<u8>>, bool)> {
    needles_folding_when(h, has_case_pair)
}

/// A rule's literals without those holding `\n` and those holding another one of the set (any
/// line holding them holds the shorter one too); None when none is left.
fn clean(v: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
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
}

/// The literals of a rule that ignores ASCII case throughout, from `kept`, the same rule
/// keeping case (its flag taken out): [`rule_needles`] of `kept`, lower-cased, each compared
/// ignoring case. Exact because the rule ignoring case matches a line exactly when the rule
/// keeping case matches some case variant of it, so each of its matches holds a case variant
/// of one of `kept`'s literals. PERF: `kept` parses to literals where the rule ignoring case
/// parses to a class per letter, and its literals are extracted once instead of from 2^n case
/// variants or a folded copy (PERF.md "thirty-third run").
pub(super) fn needles_ignoring_case(kept: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    clean(kept.iter().map(|l| l.to_ascii_lowercase()).collect())
}

/// [`rule_needles`], folding case when `may_gain(h)` says folding can give better literals.
fn needles_folding_when(h: &Hir, may_gain: fn(&Hir) -> bool) -> Option<(Vec<Vec<u8>>, bool)> {
    let good = |e: &Option<Vec<Vec<u8>>>| {
        e.as_ref()
            .is_some_and(|e| min_len(e) >= GOOD_NEEDLE_LEN && e.len() <= 2)
    };
    // PERF: a rule with many letters in both cases (a `(?i)` rule) is folded first, and its own
    // literals (case variants of short pieces, the costliest extraction there is, never
    // better than the folded ones) are not extracted when the folded ones are good: Debian's
    // 2,101 rules behind `(?i)` spent ~200 M instructions of a cold start on them. A few
    // pairs (`[Ee]rror`, `(?i:error)` after a literal) keep the order below, where a tie
    // keeps the rule's own literals (cheaper to search).
    let folded_literals = || {
        fold_case(h)
            .and_then(|f| required_literals(&f))
            .and_then(clean)
    };
    // The folded literals when they were found first (kept: they were found again below when
    // not good enough, a second fold and extraction of the same tree).
    let mut folded_first = None;
    if letter_pairs(h, FOLD_FIRST_PAIRS) >= FOLD_FIRST_PAIRS {
        let folded = folded_literals();
        if good(&folded) {
            return folded.map(|f| (f, true));
        }
        folded_first = Some(folded);
    }
    let exact = required_literals(h).and_then(clean);
    // PERF: folding is only tried when the rule's own literals are not already good (one or two
    // of 12+ bytes): `[[:alnum:]]`, `\w` and `[Cc]` hold case pairs, so nearly every rule of
    // Debian's 2,101 was extracted twice (literal extraction 80 -> 60 ms for them, one thread).
    let folded = if !good(&exact) && may_gain(h) {
        folded_first.unwrap_or_else(folded_literals)
    } else {
        None
    };
    // Folded literals win only by being longer or fewer by a doubling: on a fewer count alone
    // (case variants of the same words that the folded set counts once) the exact ones stay,
    // cheaper to search (a folded window is a key per case variant).
    let key = |l: &[Vec<u8>]| {
        let q = quality(l);
        (q.0, q.1, q.2)
    };
    match (exact, folded) {
        (Some(e), Some(f)) if key(&f) > key(&e) => Some((f, true)),
        (Some(e), _) => Some((e, false)),
        (None, f) => f.map(|f| (f, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition [`required_literals`] computes, written plainly: every prefix extracted
    /// whole by the extractor from a concatenation cloned for it.
    fn plain(h: &Hir) -> Option<Vec<Vec<u8>>> {
        let whole = |h: &Hir| finite(&extractor().extract(h));
        let mut best = whole(h);
        match h.kind() {
            HirKind::Concat(v) => {
                for i in 1..v.len() {
                    if matches!(v[i].kind(), HirKind::Literal(_)) {
                        let mut end = v.len().min(i + 4);
                        if let Some(j) = v[i..end].iter().position(ends_prefixes) {
                            end = i + j + 1;
                        }
                        best = better(best, whole(&Hir::concat(v[i..end].to_vec())));
                    }
                }
                for child in v {
                    best = better(best, plain(child));
                }
            }
            HirKind::Alternation(v) => {
                let mut union = Vec::new();
                for child in v {
                    match plain(child) {
                        Some(l) if union.len() + l.len() <= MAX_UNION_NEEDLES => union.extend(l),
                        _ => return best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN),
                    }
                }
                best = better(best, Some(union));
            }
            HirKind::Repetition(r) if r.min >= 1 => best = better(best, plain(&r.sub)),
            HirKind::Capture(c) => best = better(best, plain(&c.sub)),
            _ => {}
        }
        best.filter(|b| min_len(b) >= MIN_NEEDLE_LEN)
    }

    /// Folding written plainly: each part folded on its own, the parts concatenated.
    fn plain_fold(h: &Hir) -> Option<Hir> {
        Some(match h.kind() {
            HirKind::Concat(v) => Hir::concat(v.iter().map(plain_fold).collect::<Option<_>>()?),
            HirKind::Alternation(v) => {
                Hir::alternation(v.iter().map(plain_fold).collect::<Option<_>>()?)
            }
            HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
                sub: Box::new(plain_fold(&r.sub)?),
                ..r.clone()
            }),
            HirKind::Capture(c) => plain_fold(&c.sub)?,
            _ => fold_case(h)?,
        })
    }

    #[test]
    fn a_literal_far_rarer_in_log_text_wins_over_a_longer_one() {
        let lits = |p: &str| {
            let Ok(h) = crate::rules::syntax::parse_regex(p) else {
                panic!("{p} does not parse")
            };
            rule_needles(&h).map(|(l, _)| l)
        };
        // A level every other line holds against a word few do (both shorter than the full
        // stride's 6 bytes).
        assert_eq!(lits("INFO .*fdaf"), Some(vec![b"fdaf".to_vec()]));
        assert_eq!(lits("WARN .*BFFFF"), Some(vec![b"BFFFF".to_vec()]));
        // Both of the full stride.
        assert_eq!(
            lits("(?i)error: .*timeout"),
            Some(vec![b"timeout".to_vec()])
        );
        // Not far rarer: the longer literal stays (and so does one of the full stride
        // against a shorter rarer one, which would go to a search of its own).
        assert_eq!(lits("ERROR .*conn"), Some(vec![b"ERROR ".to_vec()]));
        assert_eq!(
            lits("Connection closed .*fdaf"),
            Some(vec![b"Connection closed ".to_vec()])
        );
    }

    #[test]
    fn literals_a_class_fans_out_are_cut_where_they_part() {
        let lits = |p: &str| {
            let Ok(h) = crate::rules::syntax::parse_regex(p) else {
                panic!("{p} does not parse")
            };
            required_literals(&h)
        };
        // Eleven prefixes (" su[0" .. " su[9", " su: ") cut to two, rarer than " su".
        let su = r"^(\w{3} [ :0-9]{11}) [._[:alnum:]-]+ su(\[[0-9]+\])?: .*$";
        assert_eq!(lits(su), Some(vec![b" su:".to_vec(), b" su[".to_vec()]));
        // Literals that part at once are kept whole, and so are literals the search takes at
        // its full stride.
        assert_eq!(
            lits("(foo|bar)bazz"),
            Some(vec![b"foobazz".to_vec(), b"barbazz".to_vec()])
        );
        let ten: Vec<Vec<u8>> = (0..10)
            .map(|i| format!("192.168.{i}").into_bytes())
            .collect();
        assert_eq!(merged(ten.clone()), ten);
        // Never cut to three bytes, where `quality` alone would: four literals sharing only
        // three stay whole.
        let four: Vec<Vec<u8>> = ["abcd", "abce", "abcf", "abcg"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        assert!(quality(&[b"abc".to_vec()]) > quality(&four));
        assert_eq!(merged(four.clone()), four);
    }

    #[test]
    fn a_folded_concatenation_is_its_parts_folded() {
        for p in [
            "(?i)kernel: Oversized packet",
            "(?i)ab[c-e]X(Yz)+\\d{2}(?-i:Q)rs",
            "[Ee]rror (?i:FAIL)ed",
            "x(?i)(ab|CD)ef",
            "(?i)a(b)c",
            "",
        ] {
            let Ok(h) = crate::rules::syntax::parse_regex(p) else {
                panic!("{p} does not parse")
            };
            assert_eq!(fold_case(&h), plain_fold(&h), "{p}");
        }
        let Ok(h) = crate::rules::syntax::parse_regex("(?i)kernel: Oversized") else {
            panic!("does not parse")
        };
        assert_eq!(
            fold_case(&h),
            Some(Hir::literal(b"kernel: oversized".to_vec()))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The shared per-part extraction and the shortcuts (a literal's prefix, nothing for
        /// a class or an optional part) give what the plain definition gives, folded or not.
        #[test]
        fn required_literals_are_the_plain_definition(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "ab", "cd", "[a-c]", "x{2}", "(?i:ef)", "(?i)", "\\d+", "[0-9]{1,3}", "foo ?",
                "\\(bar\\)", "(gh|ij)k", "lmnopqrstuvwxyz0123456789abcdefghij", "\\w", ":",
                " ", "$", "^", "\\.", "z*", "(", ")", "|", "(?:", "){2,}", ")?", "+",
            ]), 1..16)
        ) {
            let p = parts.concat();
            let Ok(h) = crate::rules::syntax::parse_regex(&p) else { return Ok(()) };
            proptest::prop_assert_eq!(required_literals(&h), plain(&h), "{}", p);
            proptest::prop_assert_eq!(fold_case(&h), plain_fold(&h), "fold {}", p);
            if let Some(f) = fold_case(&h) {
                proptest::prop_assert_eq!(required_literals(&f), plain(&f), "folded {}", p);
            }
        }

        /// Folding tried only for small classes with a case pair and for branches that differ
        /// only in case gives the literals that folding at every class with a case pair too
        /// gives (the earlier definition, which missed the branches).
        #[test]
        fn folding_only_where_it_may_gain_loses_nothing(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "ab", "cd", "Ef", "GH", "[Ee]", "[Cc]on", "[A-Fa-f]", "[A-Za-z]", "\\w",
                "[[:alnum:]]+", "[A-Z0-9_.-]", "(?i)", "(?i:rror)", "(Error|error)", "(gh|GH)",
                "(ab|Ab|aB)", "x{2}", "\\d+", " ", ":", "lmnopqrstuv", "(", ")", "|", ")?", "+",
            ]), 1..14)
        ) {
            /// Every class with a case pair, large or small (the earlier definition).
            fn any_case_pair(h: &Hir) -> bool {
                match h.kind() {
                    HirKind::Class(Class::Bytes(c)) => c.ranges().iter().any(|r| {
                        (r.start()..=r.end()).any(|b| {
                            b.is_ascii_uppercase()
                                && c.ranges().iter().any(|q| q.start() <= b | 0x20 && b | 0x20 <= q.end())
                        })
                    }),
                    HirKind::Class(Class::Unicode(_)) => true,
                    HirKind::Repetition(r) => any_case_pair(&r.sub),
                    HirKind::Capture(c) => any_case_pair(&c.sub),
                    HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(any_case_pair),
                    _ => false,
                }
            }
            /// The tree without its groups. Folding drops them, and with them the bounds that
            /// keep a group's last literal from joining the next one (`(x[A-Z] )ab` folds to
            /// " ab", keeps case as "ab"): a gain of folding that has nothing to do with case.
            fn ungrouped(h: &Hir) -> Hir {
                match h.kind() {
                    HirKind::Capture(c) => ungrouped(&c.sub),
                    HirKind::Concat(v) => Hir::concat(v.iter().map(ungrouped).collect()),
                    HirKind::Alternation(v) => Hir::alternation(v.iter().map(ungrouped).collect()),
                    HirKind::Repetition(r) => Hir::repetition(hir::Repetition {
                        sub: Box::new(ungrouped(&r.sub)),
                        ..r.clone()
                    }),
                    _ => h.clone(),
                }
            }
            let p = parts.concat();
            let Ok(h) = crate::rules::syntax::parse_regex(&p) else { return Ok(()) };
            let h = ungrouped(&h);
            let either = |h: &Hir| any_case_pair(h) || has_case_pair(h);
            proptest::prop_assert_eq!(rule_needles(&h), needles_folding_when(&h, either), "{}", p);
        }
    }

    /// Rules whose folded literals are better still get them: a small class with a case pair
    /// (`[Ee]`, `(?i)`), and literals differing only in case.
    #[test]
    fn rules_with_many_letters_in_both_cases_are_folded_first() {
        // Its own literals would be the letter-free piece (good enough to stop there before);
        // folded first, the letters count too.
        let h =
            crate::rules::syntax::parse_regex("(?i)^\\w+ arpwatch: ethernet broadcast 0:0:0:0:0:0")
                .unwrap();
        assert!(letter_pairs(&h, FOLD_FIRST_PAIRS) >= FOLD_FIRST_PAIRS);
        assert_eq!(
            rule_needles(&h),
            Some((vec![b" arpwatch: ethernet broadcast 0:".to_vec()], true))
        );
        // A few pairs: the rule's own literals when they are as good (a tie keeps them).
        let h = crate::rules::syntax::parse_regex("open through proxy \\S+ (?i:error)").unwrap();
        assert_eq!(letter_pairs(&h, FOLD_FIRST_PAIRS), 5);
        assert_eq!(
            rule_needles(&h),
            Some((vec![b"open through proxy ".to_vec()], false))
        );
    }

    #[test]
    fn small_case_classes_and_case_variants_are_folded() {
        for (p, want) in [
            (
                "[Rr]eading [Pp]ackage [Ll]ists",
                &["reading package lists"][..],
            ),
            ("(?i)connection refused", &["connection refused"]),
            ("(Illegal|illegal) us", &["illegal us"]),
            ("(Error \\d+|error \\w+)", &["error "]),
            ("[Aa]uth fail", &["auth fail"]),
            // regex-syntax makes `(?i)(o|w)` a class of characters, not of bytes.
            (
                "(?i)expanded entry: -r(o|w)",
                &["expanded entry: -ro", "expanded entry: -rw"],
            ),
            (
                "(?i)options=\"r(o|w)\", \\w",
                &["options=\"ro\", ", "options=\"rw\", "],
            ),
        ] {
            let h = crate::rules::syntax::parse_regex(p).unwrap();
            let (lits, ci) = rule_needles(&h).unwrap();
            assert!(ci, "{p}: {lits:?}");
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.as_bytes().to_vec()).collect();
            assert_eq!(lits, want, "{p}");
        }
    }
}
