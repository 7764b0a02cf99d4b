//! Class windows of rules without literals: runs of byte classes every match contains.
//!
//! Role: [`rarest_windows`] walks a rule's syntax tree for *factors* — sequences of byte
//! classes that every match holds at consecutive positions (a literal's bytes, a class, the
//! `n` guaranteed copies of `X{n,}`, what an alternation's branches have in common position by
//! position) — and picks the window of at most [`MAX_WIDTH`] classes least likely in log text
//! (`litscan::class_chances`). The DFA part's candidate lines are then found by
//! `litscan::ClassScan` over those windows instead of the automaton over every byte.
//! Invariants: a factor is only ever a superset of what matches hold (position-wise unions,
//! guaranteed copies only): a window is never absent from a match, so nothing is missed.

use crate::litscan::classes::{ByteSet, MAX_WIDTH};
use crate::litscan::{class_chances, window_of_classes};
use regex_syntax::hir::{Class, Hir, HirKind};

/// Longest head, tail or factor kept (classes).
const KEEP: usize = 64;
/// Most inner factors kept per node (the longest).
const MAX_FACTORS: usize = 16;
/// Most alternatives in a [`Choice`]: `[0-9]{1,3}` is three.
const MAX_ALTS: usize = 4;

/// A window this rare needs no more classes: about one position in 65,536.
const RARE_ENOUGH: f64 = 1.0 / 65_536.0;

/// Runs of classes one of which a match holds (a single run: the match holds it).
type Choice = Vec<Vec<ByteSet>>;

/// What a node guarantees about its matches, as byte classes at consecutive positions.
#[derive(Debug, Clone)]
struct Seq {
    /// Every match is exactly one of these runs (zero-width nodes: one empty run).
    exact: Option<Choice>,
    /// Every match starts with one of `heads` and ends with one of `tails`.
    heads: Choice,
    tails: Choice,
    /// Choices every match holds somewhere inside.
    inner: Vec<Choice>,
}

fn byte(b: u8) -> ByteSet {
    let mut s = [0u64; 4];
    s[usize::from(b >> 6)] |= 1 << (b & 63);
    s
}

fn union(a: &ByteSet, b: &ByteSet) -> ByteSet {
    [a[0] | b[0], a[1] | b[1], a[2] | b[2], a[3] | b[3]]
}

/// Nothing known (a node whose matches may be any bytes, or empty).
fn unknown() -> Seq {
    Seq {
        exact: None,
        heads: vec![Vec::new()],
        tails: vec![Vec::new()],
        inner: Vec::new(),
    }
}

fn head(mut v: Vec<ByteSet>) -> Vec<ByteSet> {
    v.truncate(KEEP);
    v
}

fn tail(v: Vec<ByteSet>) -> Vec<ByteSet> {
    v[v.len().saturating_sub(KEEP)..].to_vec()
}

fn exact(c: Choice) -> Seq {
    if c.iter().any(|r| r.len() > KEEP) {
        return Seq {
            exact: None,
            heads: c.iter().cloned().map(head).collect(),
            tails: c.into_iter().map(tail).collect(),
            inner: Vec::new(),
        };
    }
    Seq {
        heads: c.clone(),
        tails: c.clone(),
        exact: Some(c),
        inner: Vec::new(),
    }
}

/// Every run of `a` followed by every run of `b`, when there are few enough.
fn cross(a: &Choice, b: &Choice) -> Option<Choice> {
    if a.len() * b.len() > MAX_ALTS {
        return None;
    }
    let c: Choice = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| [x.as_slice(), y].concat()))
        .collect();
    c.iter().all(|r| r.len() <= KEEP).then_some(c)
}

/// One run covering every run of `c` from its start (position-wise unions over their common
/// length), or from its end.
fn collapse(c: &Choice, from_end: bool) -> Vec<ByteSet> {
    let n = c.iter().map(Vec::len).min().unwrap_or(0);
    let mut u = vec![[0u64; 4]; n];
    for r in c {
        let part = if from_end { &r[r.len() - n..] } else { &r[..n] };
        for (x, y) in u.iter_mut().zip(part) {
            *x = union(x, y);
        }
    }
    u
}

/// `a` followed by `b`: every pair of runs when there are few enough, else with one side (then
/// both) collapsed into one run.
fn join(a: &Choice, b: &Choice) -> Choice {
    let a1 = vec![collapse(a, true)];
    let b1 = vec![collapse(b, false)];
    cross(a, b)
        .or_else(|| cross(&a1, b))
        .or_else(|| cross(a, &b1))
        .unwrap_or_else(|| vec![[a1.concat(), b1.concat()].concat()])
}

fn keep_factors(f: &mut Vec<Choice>) {
    f.retain(|c| !c.is_empty() && c.iter().all(|r| !r.is_empty()));
    if f.len() > MAX_FACTORS {
        f.sort_by_key(|c| std::cmp::Reverse(c.iter().map(Vec::len).min().unwrap_or(0)));
        f.truncate(MAX_FACTORS);
    }
}

fn concat(a: Seq, b: Seq) -> Seq {
    let mut inner = a.inner;
    inner.extend(b.inner);
    inner.push(join(&a.tails, &b.heads));
    keep_factors(&mut inner);
    let heads = match &a.exact {
        Some(e) => join(e, &b.heads),
        None => a.heads,
    };
    let tails = match &b.exact {
        Some(e) => join(&a.tails, e),
        None => b.tails,
    };
    let exact = match (&a.exact, &b.exact) {
        (Some(x), Some(y)) => cross(x, y),
        _ => None,
    };
    Seq {
        exact,
        heads: heads.into_iter().map(head).collect(),
        tails: tails.into_iter().map(tail).collect(),
        inner,
    }
}

/// The runs of all of `cs`, or one run covering them all (position-wise, from the start or
/// the end) when there are too many.
fn any_of(cs: &[&Choice], from_end: bool) -> Choice {
    let all: Choice = cs.iter().flat_map(|c| c.iter().cloned()).collect();
    if all.len() <= MAX_ALTS {
        return all;
    }
    vec![collapse(&all, from_end)]
}

fn alternation(alts: Vec<Seq>) -> Seq {
    if alts.is_empty() {
        return unknown();
    }
    let exacts: Option<Vec<&Choice>> = alts.iter().map(|a| a.exact.as_ref()).collect();
    if let Some(e) = exacts {
        let runs: usize = e.iter().map(|c| c.len()).sum();
        let lens: Vec<usize> = e.iter().flat_map(|c| c.iter().map(Vec::len)).collect();
        if runs <= MAX_ALTS || lens.windows(2).all(|w| w[0] == w[1]) {
            return exact(any_of(&e, false));
        }
    }
    let heads: Vec<&Choice> = alts.iter().map(|a| &a.heads).collect();
    let tails: Vec<&Choice> = alts.iter().map(|a| &a.tails).collect();
    // Each branch's rarest factor, wherever it is in the branch: a match holds one of their
    // runs (sagan-rules' `(http://…|\/\??[a-f0-9]{60,}…|…)`: the third branch's head is `/`,
    // its hex digits are inside, after the optional `?`).
    let mut inner = Vec::new();
    let rarest: Option<Vec<Choice>> = alts.iter().map(rarest_factor).collect();
    if let Some(runs) = rarest.map(|r| r.concat()) {
        if runs.len() <= MAX_BRANCH_RUNS {
            inner.push(runs);
        }
    }
    Seq {
        exact: None,
        heads: any_of(&heads, false),
        tails: any_of(&tails, true),
        inner,
    }
}

/// Most runs an alternation's factor of its branches' rarest factors may have (a window
/// each, in a search of at most `MAX_WINDOWS`).
const MAX_BRANCH_RUNS: usize = 8;

/// The factors of `s`: its inner ones, its exact runs, its heads and its tails.
fn factors(s: &Seq) -> Vec<Choice> {
    let mut factors = s.inner.clone();
    factors.extend(s.exact.clone());
    factors.push(s.heads.clone());
    factors.push(s.tails.clone());
    keep_factors(&mut factors);
    factors
}

/// The window of at most [`MAX_WIDTH`] classes of `run` least likely in log text (the
/// narrowest that is rare enough) and its chance at a position.
fn rarest_window(run: &[ByteSet]) -> (Vec<ByteSet>, f64) {
    // PERF: a stretch of one class longer than a window cut to a window's width: the same
    // windows (one of at most MAX_WIDTH classes touches one end of the stretch at most), and
    // the chances of each class and pair are not computed again for every copy
    // (`[a-f0-9]{60,}`: 60 copies, sagan-rules' start-up 4 ms longer).
    let squeezed = squeeze(run);
    let run = squeezed.as_slice();
    let (singles, pairs) = class_chances(run);
    // PERF: the narrowest window that is rare enough (each class costs the search two
    // shuffles a block), else the rarest of the widest.
    let mut pick = (0, 0, 1.0);
    for width in 1..=run.len().min(MAX_WIDTH) {
        let (start, p) = (0..=run.len() - width)
            .map(|start| (start, window_of_classes(&singles, &pairs, start, width)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 1.0));
        pick = (start, width, p);
        if p <= RARE_ENOUGH {
            break;
        }
    }
    let (start, width, p) = pick;
    (run[start..start + width].to_vec(), p)
}

/// `run` with every stretch of one class cut to [`MAX_WIDTH`] copies.
fn squeeze(run: &[ByteSet]) -> Vec<ByteSet> {
    let mut out: Vec<ByteSet> = Vec::with_capacity(run.len().min(KEEP));
    let mut same = 0;
    for c in run {
        same = if out.last() == Some(c) { same + 1 } else { 1 };
        if same <= MAX_WIDTH {
            out.push(*c);
        }
    }
    out
}

/// The factor of `factors` whose windows are least likely together: its windows, their
/// summed chance and its place.
fn rarest_of(factors: &[Choice]) -> Option<(Vec<Vec<ByteSet>>, f64, usize)> {
    let mut best: Option<(Vec<Vec<ByteSet>>, f64, usize)> = None;
    for (i, f) in factors.iter().enumerate() {
        let (windows, sum) = f.iter().map(|run| rarest_window(run)).fold(
            (Vec::with_capacity(f.len()), 0.0),
            |(mut ws, sum), (w, p)| {
                ws.push(w);
                (ws, sum + p)
            },
        );
        if best.as_ref().is_none_or(|(_, q, _)| sum < *q) {
            best = Some((windows, sum, i));
        }
    }
    best
}

/// A branch's rarest factor; None when no match of it need hold a byte.
fn rarest_factor(s: &Seq) -> Option<Choice> {
    let mut factors = factors(s);
    let (_, _, i) = rarest_of(&factors)?;
    Some(factors.swap_remove(i))
}

fn seq(h: &Hir) -> Seq {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => exact(vec![Vec::new()]),
        HirKind::Literal(l) => exact(vec![l.0.iter().map(|&b| byte(b)).collect()]),
        HirKind::Class(Class::Bytes(c)) => {
            let mut s = [0u64; 4];
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    s = union(&s, &byte(b));
                }
            }
            exact(vec![vec![s]])
        }
        // Rules are byte-based (`unicode(false)`): a Unicode class here is not one byte.
        HirKind::Class(Class::Unicode(_)) => unknown(),
        HirKind::Capture(c) => seq(&c.sub),
        HirKind::Repetition(r) => repetition(seq(&r.sub), r.min, r.max),
        HirKind::Concat(v) => v
            .iter()
            .map(seq)
            .reduce(concat)
            .unwrap_or_else(|| exact(vec![Vec::new()])),
        HirKind::Alternation(v) => alternation(v.iter().map(seq).collect()),
    }
}

fn repetition(s: Seq, min: u32, max: Option<u32>) -> Seq {
    if min == 0 {
        return unknown();
    }
    let min = min as usize;
    if let Some([e]) = s.exact.as_deref() {
        let times =
            |k: usize| -> Vec<ByteSet> { e.iter().cycle().take(e.len() * k).copied().collect() };
        // `X{n,m}` of a fixed run: each count a run, when there are few (`[0-9]{1,3}`).
        let counts = match max {
            Some(m) => min..=m as usize,
            None => min..=min,
        };
        if counts.end() - counts.start() < MAX_ALTS && e.len() * counts.end() <= KEEP {
            let runs: Choice = counts.clone().map(times).collect();
            if max.is_some() {
                return exact(runs);
            }
        }
        let run = head(times(min.min(KEEP)));
        return Seq {
            exact: None,
            heads: vec![run.clone()],
            tails: vec![run],
            inner: Vec::new(),
        };
    }
    let mut inner = s.inner;
    if min >= 2 {
        inner.push(join(&s.tails, &s.heads));
        keep_factors(&mut inner);
    }
    Seq {
        exact: None,
        heads: s.heads,
        tails: s.tails,
        inner,
    }
}

/// Most heads [`fixed_heads`] keeps (an IP:port pattern has 81).
const MAX_HEADS: usize = 256;

/// The classes the matches of `h` start with, as far as they are fixed, one run per way of
/// matching (an alternation's branches, a bounded repetition's counts): literals, classes, a
/// repetition's guaranteed copies, up to the first part whose length is not known (then the
/// run is closed: `false`); zero-width assertions are skipped. Every match starts with one of
/// the runs. None when there would be more than [`MAX_HEADS`].
fn fixed_heads(h: &Hir) -> Option<Vec<(Vec<ByteSet>, bool)>> {
    let closed = || Some(vec![(Vec::new(), false)]);
    match h.kind() {
        HirKind::Look(_) | HirKind::Empty => Some(vec![(Vec::new(), true)]),
        HirKind::Literal(l) => Some(vec![(l.0.iter().map(|&b| byte(b)).collect(), true)]),
        HirKind::Class(Class::Bytes(c)) => {
            let mut set = [0u64; 4];
            for r in c.ranges() {
                for b in r.start()..=r.end() {
                    set = union(&set, &byte(b));
                }
            }
            Some(vec![(vec![set], true)])
        }
        HirKind::Capture(c) => fixed_heads(&c.sub),
        HirKind::Concat(parts) => {
            let mut heads = vec![(Vec::new(), true)];
            for p in parts {
                if heads.iter().all(|(_, open)| !open) {
                    break;
                }
                heads = then(heads, &fixed_heads(p)?)?;
            }
            Some(heads)
        }
        HirKind::Alternation(branches) => {
            let mut heads = Vec::new();
            for b in branches {
                heads.extend(fixed_heads(b)?);
                if heads.len() > MAX_HEADS {
                    return None;
                }
            }
            Some(heads)
        }
        HirKind::Repetition(r) => {
            let sub = fixed_heads(&r.sub)?;
            let times = |n: u32| -> Option<Vec<(Vec<ByteSet>, bool)>> {
                let mut heads = vec![(Vec::new(), true)];
                for _ in 0..n.min(KEEP as u32) {
                    heads = then(heads, &sub)?;
                }
                Some(heads)
            };
            match r.max {
                Some(max) if max - r.min < MAX_ALTS as u32 => {
                    let mut heads = Vec::new();
                    for n in r.min..=max {
                        heads.extend(times(n)?);
                        if heads.len() > MAX_HEADS {
                            return None;
                        }
                    }
                    Some(heads)
                }
                // More copies may follow the guaranteed ones: the runs end there.
                _ if r.min == 0 => closed(),
                _ => Some(times(r.min)?.into_iter().map(|(h, _)| (h, false)).collect()),
            }
        }
        _ => closed(),
    }
}

/// Each open run of `heads` followed by each of `next` (closed runs kept as they are).
fn then(
    heads: Vec<(Vec<ByteSet>, bool)>,
    next: &[(Vec<ByteSet>, bool)],
) -> Option<Vec<(Vec<ByteSet>, bool)>> {
    let mut out = Vec::with_capacity(heads.len());
    for (h, open) in heads {
        if !open || h.len() >= KEEP {
            out.push((h, false));
            continue;
        }
        for (n, more) in next {
            out.push(([h.as_slice(), n].concat(), *more));
        }
        if out.len() > MAX_HEADS {
            return None;
        }
    }
    Some(out)
}

/// How far after the start of every match of `h` one of `windows` (the rule's, from
/// [`rarest_windows`]) surely starts: for each run its matches may start with
/// ([`fixed_heads`]), the least place where each class of a window holds the run's class
/// there; the largest of those. None when some run holds no window. (A match starting at `s`
/// then holds a window at or before `s + place`, so no match starts before a line's first
/// window less `place`.)
pub(super) fn window_place(h: &Hir, windows: &[Vec<ByteSet>]) -> Option<usize> {
    let within = |a: &ByteSet, b: &ByteSet| a.iter().zip(b).all(|(x, y)| x & !y == 0);
    let place = |head: &[ByteSet]| {
        windows
            .iter()
            .filter(|w| !w.is_empty() && w.len() <= head.len())
            .filter_map(|w| {
                (0..=head.len() - w.len()).find(|&o| {
                    head[o..o + w.len()]
                        .iter()
                        .zip(w)
                        .all(|(c, wc)| within(c, wc))
                })
            })
            .min()
    };
    let heads = fixed_heads(h)?;
    let mut most = 0;
    for (head, _) in &heads {
        most = most.max(place(head)?);
    }
    Some(most)
}

/// The windows of at most [`MAX_WIDTH`] classes one of which every match of `h` holds, chosen
/// least likely in log text, with their summed chance at a position; `None` when no match
/// need hold a byte.
pub(super) fn rarest_windows(h: &Hir) -> Option<(Vec<Vec<ByteSet>>, f64)> {
    rarest_of(&factors(&seq(h))).map(|(windows, sum, _)| (windows, sum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litscan::classes::has;

    fn window(re: &str) -> Option<(String, f64)> {
        let h = crate::rules::parse_regex(re).ok()?;
        let (w, p) = rarest_windows(&h)?;
        let show = w
            .iter()
            .map(|w| {
                w.iter()
                    .map(|s| {
                        let n = (0..=255u8).filter(|&b| has(s, b)).count();
                        match (0..=255u8).find(|&b| has(s, b)) {
                            Some(b) if n == 1 => (b as char).to_string(),
                            Some(b) => format!("[{}+{}]", b as char, n - 1),
                            None => "[]".into(),
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("|");
        Some((show, p))
    }

    #[test]
    fn an_alternation_takes_each_branchs_rarest_factor() {
        // The second branch's head is `/` (an optional `?` follows), its hex digits are
        // inside; the first's rarest run is inside too.
        let rule =
            r"(http://[^/]+/[a-z0-9]{6,}_[0-9]+_[a-f0-9]{32}\.html|/\??[a-f0-9]{60,};1\d{5})";
        let (w, p) = window(rule).unwrap_or_default();
        assert!(!w.split('|').any(|x| x == "/"), "{w}");
        assert!(p < 1.0 / 4096.0, "{w} {p}");
    }

    /// The place of a rule's window in the fixed start of its matches: the identifier's
    /// window starts every match; an IP:port's sits after a varying count of digits.
    #[test]
    fn windows_at_a_fixed_place_in_every_match() {
        let place = |re: &str| {
            let h = crate::rules::parse_regex(re).ok()?;
            let (w, _) = rarest_windows(&h)?;
            window_place(&h, &w)
        };
        let parse = |re: &str| crate::rules::parse_regex(re).unwrap_or_else(|_| Hir::fail());
        assert_eq!(place(r"\b[A-Z][A-Z0-9_]{7,}\b"), Some(0));
        // IP:port: each of the 81 ways of counting the digits holds a window around its `:`,
        // at most 12 bytes after the start (`ddd.ddd.ddd.` then `ddd:d`).
        let ip = place(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+");
        assert!(ip.is_some_and(|p| (4..=12).contains(&p)), "{ip:?}");
        // After a fixed stretch: `ab` then the window; its classes must hold the run's.
        let h = parse(r"(?:ab)[0-9]{3}x[0-9]+");
        let digit = (b'0'..=b'9').fold([0u64; 4], |s, b| union(&s, &byte(b)));
        let w = vec![vec![byte(b'0'), byte(b'x')]];
        assert_eq!(window_place(&h, &w), None, "[0-9] is not within `0`");
        assert_eq!(window_place(&h, &[vec![digit, byte(b'x')]]), Some(4));
        // A part of unknown length ends the runs.
        let h = parse(r"a+[0-9]x");
        assert_eq!(window_place(&h, &[vec![digit, byte(b'x')]]), None);
        let h = parse(r"a{3}[0-9]x");
        assert_eq!(window_place(&h, &[vec![digit, byte(b'x')]]), Some(3));
        // A window that only some ways of matching hold gives no place.
        let h = parse(r"(?:ab|cde)[0-9]x");
        let ab = vec![byte(b'b'), digit, byte(b'x')];
        assert_eq!(window_place(&h, std::slice::from_ref(&ab)), None);
        let cde = vec![byte(b'e'), digit, byte(b'x')];
        assert_eq!(window_place(&h, &[ab, cde]), Some(2));
    }

    #[test]
    fn factors_of_rules_without_literals() {
        // Eight classes: `[A-Z]` then seven of `[A-Z0-9_]`.
        let (w, _) = window(r"\b[A-Z][A-Z0-9_]{7,}\b").unwrap_or_default();
        assert_eq!(w, "[A+25][0+36][0+36][0+36][0+36][0+36][0+36][0+36]");
        // `[0-9]{1,3}` is one, two or three digits: the windows around the `:`.
        let (w, _) =
            window(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]+").unwrap_or_default();
        let ends = [
            "[0+9].[0+9]:[0+9]",
            "[0+9].[0+9][0+9]:[0+9]",
            "[0+9].[0+9][0+9][0+9]:[0+9]",
        ];
        let got: Vec<&str> = w.split('|').collect();
        assert!(
            got.len() == 3 && got.iter().zip(ends).all(|(g, e)| g.ends_with(e)),
            "{w}"
        );
        // Few branches: a window of each (the narrowest rare enough).
        let inside = |re: &str, branches: &[&str]| {
            let (w, _) = window(re).unwrap_or_default();
            let got: Vec<&str> = w.split('|').collect();
            let ok = got.len() == branches.len()
                && got
                    .iter()
                    .zip(branches)
                    .all(|(g, b)| !g.is_empty() && b.contains(g));
            assert!(ok, "{re}: {w}");
        };
        inside(r"(?:abc|xyz)", &["abc", "xyz"]);
        inside(r"\[(crit|alert|emerg)\]", &["[crit]", "[alert]", "[emerg]"]);
        // Nothing guaranteed: optional parts, empty rule.
        assert!(window(r"(?:[a-z]+)?").is_none());
        assert!(window(r"").is_none());
    }

    #[test]
    fn a_window_is_in_every_match() {
        // Random rules over a small alphabet, random lines: wherever a rule matches, its
        // window occurs inside the match.
        let mut next = crate::rules::xorshift(0x9E37_79B9_7F4A_7C15);
        let atoms = [
            "a",
            "b",
            "[ab]",
            "[0-9]",
            r"\.",
            "(?:ab|ba)",
            "(?:a|bb)",
            r"\b",
            "x?",
        ];
        let reps = ["", "+", "*", "{2}", "{1,3}", "{2,}"];
        let mut checked = 0;
        for _ in 0..2_000 {
            let n = 1 + next() % 5;
            let re: String = (0..n)
                .map(|_| {
                    let a = atoms[(next() % atoms.len() as u64) as usize];
                    let r = if a == r"\b" {
                        ""
                    } else {
                        reps[(next() % reps.len() as u64) as usize]
                    };
                    format!("(?:{a}){r}")
                })
                .collect();
            let Ok(h) = crate::rules::parse_regex(&re) else {
                continue;
            };
            let Some((ws, _)) = rarest_windows(&h) else {
                continue;
            };
            let Ok(rx) = regex_automata::meta::Regex::new(&re) else {
                continue;
            };
            for _ in 0..20 {
                let line: Vec<u8> = (0..(next() % 24))
                    .map(|_| b"ab0.9 x"[(next() % 7) as usize])
                    .collect();
                let Some(m) = rx.find(&line) else { continue };
                let text = &line[m.range()];
                let holds = ws.iter().any(|w| {
                    text.windows(w.len())
                        .any(|t| t.iter().zip(w).all(|(&b, s)| has(s, b)))
                });
                assert!(
                    holds,
                    "{re}: window missing from match {:?}",
                    String::from_utf8_lossy(text)
                );
                checked += 1;
            }
        }
        assert!(checked > 1_000, "only {checked} matches checked");
    }
}
