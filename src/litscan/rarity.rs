//! How likely a window of bytes is in ordinary log text: where to place a literal's filter
//! windows.
//!
//! Role: [`rarest_base`] picks the offset in a literal whose windows are least likely in log
//! text, from a first-order Markov model of byte pairs ([`RARITY`], made by
//! `scripts/gen-rarity.py` from the loghub samples of `tests/data/corpus`). A literal's windows
//! placed on common text (" of ", "erro") would send most lines to the buckets.
//! Invariants: only placement depends on the model — a wrong estimate costs speed, never a
//! missed match (every window of every literal is in the filter).
//! [`class_chances`] estimates windows of byte classes the same way (`classes`).
//! Rejected alternative: single-byte frequencies (memchr's heuristic) — they cannot tell
//! "rror" inside words from "k is" across them.

use super::classes::ByteSet;

/// How rare bytes and byte pairs are in log text, case kept: -log2 of their frequency in the
/// loghub samples of `tests/data/corpus` (2.9 MB), rounded; pairs (row = first byte) capped at 40,
/// then single bytes capped at 21. `scripts/gen-rarity.py` makes it.
static RARITY: &[u8; 128 * 128 + 128] = include_bytes!("../data/rarity.bin");

/// The chance of a window in ordinary log text: a first-order Markov estimate from [`RARITY`]
/// (P(abcd) = P(ab) P(bc)/P(b) P(cd)/P(c)), summed over the window's case variants when `ci`.
/// Pairs inside common words ("work", "rror") score high; windows across word boundaries ("k
/// is") low; "RROR" lower than "rror".
pub(super) fn window_chance(w: &[u8], ci: bool) -> f64 {
    if ci && w.len() >= 2 && w.iter().any(u8::is_ascii_alphabetic) {
        return chance_ignoring_case(w);
    }
    exact_chance(w)
}

/// The model's chance of one of `lits` at a position of log text: their [`window_chance`]s
/// ignoring case, summed (a rule's literals are compared with other literals the same rule
/// requires; case ignored so that a literal of a rule ignoring case, kept in lower case, is
/// rated as the text holds it).
pub(crate) fn literals_chance(lits: &[Vec<u8>]) -> f64 {
    // (A literal of less than two bytes: as common as can be.)
    lits.iter()
        .map(|l| {
            if l.len() < 2 {
                1.0
            } else {
                window_chance(l, true)
            }
        })
        .sum()
}

/// -log2 of a byte's frequency ([`RARITY`]).
fn one(b: u8) -> i32 {
    i32::from(RARITY.get(128 * 128 + b as usize).copied().unwrap_or(21))
}

/// -log2 of a byte pair's frequency ([`RARITY`]).
fn two(a: u8, b: u8) -> i32 {
    match RARITY.get(a as usize * 128 + b as usize) {
        Some(&r) if a < 128 && b < 128 => i32::from(r),
        _ => 40,
    }
}

/// 2^-r, r an integer: built, not computed (start-up with 1,000 rules).
fn pow2_neg(r: i32) -> f64 {
    f64::from_bits(((1023 - r.clamp(-1022, 1022)) as u64) << 52)
}

/// [`window_chance`] of `w` itself.
fn exact_chance(w: &[u8]) -> f64 {
    let mut r = two(w[0], w[1]);
    for i in 1..w.len() - 1 {
        r += two(w[i], w[i + 1]) - one(w[i]);
    }
    pow2_neg(r.max(0))
}

/// [`window_chance`] summed over the case variants of `w` (at least 2 bytes): the model's
/// chances summed position by position over each letter's two cases (a forward pass of the
/// Markov chain), not variant by variant.
// PERF: up to 16 variants of 3 pair look-ups each per window: Debian's 2,101 rules behind
// `(?i)` spent 102 M instructions of a cold start placing their literals' windows.
fn chance_ignoring_case(w: &[u8]) -> f64 {
    let cases = |b: u8| -> ([u8; 2], usize) {
        match b.is_ascii_alphabetic() {
            true => ([b | 0x20, b & !0x20], 2),
            false => ([b, b], 1),
        }
    };
    // sums[j]: the chance of the window up to position k, ending with case j of byte k.
    let (first, n0) = cases(w[0]);
    let (mut prev, mut n) = cases(w[1]);
    let mut sums = [0f64; 2];
    for (j, s) in sums.iter_mut().enumerate().take(n) {
        for &a in &first[..n0] {
            *s += pow2_neg(two(a, prev[j]));
        }
    }
    for &b in &w[2..] {
        let (next, m) = cases(b);
        let mut to = [0f64; 2];
        for (j, t) in to.iter_mut().enumerate().take(m) {
            for i in 0..n {
                *t += sums[i] * pow2_neg(two(prev[i], next[j]) - one(prev[i]));
            }
        }
        (sums, prev, n) = (to, next, m);
    }
    sums[..n].iter().sum()
}

/// `f` of the window `w`, or (when `ci`) the sum of `f` over its case variants.
pub(super) fn over_variants<T: std::ops::AddAssign + Default>(
    w: &[u8],
    ci: bool,
    f: impl Fn(&[u8]) -> T,
) -> T {
    if !ci {
        return f(w);
    }
    let mut sum = T::default();
    each_case_variant(w, &mut |v| sum += f(v));
    sum
}

/// Call `on` with every ASCII case variant of a window of at most 4 bytes (at most 16).
pub(super) fn each_case_variant(w: &[u8], on: &mut dyn FnMut(&[u8])) {
    let n = w.len().min(4);
    let (mut letters, mut count) = ([0usize; 4], 0);
    for (i, b) in w.iter().take(n).enumerate() {
        if b.is_ascii_alphabetic() {
            letters[count] = i;
            count += 1;
        }
    }
    for flips in 0..1u32 << count {
        let mut v = [0u8; 4];
        v[..n].copy_from_slice(&w[..n]);
        for (bit, &i) in letters[..count].iter().enumerate() {
            if flips & (1 << bit) != 0 {
                v[i] ^= 0x20;
            }
        }
        on(&v[..n]);
    }
}

/// Where in a literal its `stride` windows start: the place whose windows are least likely in
/// ordinary text ([`window_chance`]). A window of common bytes (" of ", "erro") would send most
/// lines to the buckets.
pub(super) fn rarest_base(lit: &[u8], ci: bool, width: usize, stride: usize) -> usize {
    BaseCosts::new(lit, width, stride, |w| window_chance(w, ci)).cheapest()
}

/// What each place of a literal's `stride` windows of `width` bytes costs, by a cost per window
/// (the model's chance: [`rarest_base`]; a stream's count: `placement::stream_base`).
pub(super) struct BaseCosts {
    /// Per window start; literals are cut at 32 bytes (`rules::prefix_literals`): 29 windows at
    /// most.
    window: [f64; 64],
    stride: usize,
    /// How many places there are (every window inside the literal).
    bases: usize,
}

impl BaseCosts {
    pub(super) fn new(
        lit: &[u8],
        width: usize,
        stride: usize,
        cost: impl Fn(&[u8]) -> f64,
    ) -> Self {
        let mut window = [f64::MAX; 64];
        for (c, w) in window.iter_mut().zip(lit.windows(width)) {
            *c = cost(w);
        }
        // (Written so that it cannot underflow: a 7-byte literal at width 4, stride 4 has one
        // base.)
        let bases = (lit.len() + 2).saturating_sub(width + stride);
        BaseCosts {
            window,
            stride,
            bases,
        }
    }

    /// The cost of the windows starting at `base`.
    pub(super) fn at(&self, base: usize) -> f64 {
        self.window
            .get(base..base + self.stride)
            .map_or(f64::MAX, |c| c.iter().sum())
    }

    /// The place whose windows cost least (0 when there is none).
    pub(super) fn cheapest(&self) -> usize {
        (0..self.bases)
            .min_by(|&a, &b| self.at(a).total_cmp(&self.at(b)))
            .unwrap_or(0)
    }
}

/// The chance of each byte at a position of ordinary log text (bytes above ASCII count as the
/// rarest).
pub(super) fn byte_chances() -> [f64; 256] {
    std::array::from_fn(|b| byte_chance(b as u8))
}

/// The chance of byte `b` at a position of ordinary log text (see [`byte_chances`]).
fn byte_chance(b: u8) -> f64 {
    let r = RARITY
        .get(128 * 128 + usize::from(b))
        .copied()
        .filter(|_| b < 128);
    f64::from_bits((1023 - u64::from(r.unwrap_or(21).min(100))) << 52)
}

/// The chances of byte classes in ordinary log text, for [`window_of_classes`]: per class,
/// the chance of one of its bytes at a position; per adjacent pair, the chance of one of its
/// byte pairs (bytes above ASCII count as the rarest).
pub(crate) fn class_chances(sets: &[ByteSet]) -> (Vec<f64>, Vec<f64>) {
    let t = tables();
    let singles = sets
        .iter()
        .map(|s| {
            members(s)
                .map(|b| t.one[usize::from(b)])
                .sum::<f64>()
                .min(1.0)
        })
        .collect();
    let pairs = sets
        .windows(2)
        .map(|w| pair_chance(t, &w[0], &w[1]))
        .collect();
    (singles, pairs)
}

/// The bytes of a class, in order. PERF: its set bits only (a class's chances were summed over
/// all 256 bytes, a sixth of start-up with Logstash's grok patterns: PERF.md forty-third run).
fn members(s: &ByteSet) -> impl Iterator<Item = u8> + '_ {
    s.iter().enumerate().flat_map(|(i, &word)| {
        let mut w = word;
        std::iter::from_fn(move || {
            (w != 0).then(|| {
                let b = w.trailing_zeros();
                w &= w - 1;
                (i as u32 * 64 + b) as u8
            })
        })
    })
}

/// The chances of bytes and byte pairs, decoded once from the rarity table.
struct Tables {
    /// Per byte (bytes above ASCII count as the rarest).
    one: [f64; 256],
    /// Per ASCII pair `x y`, at `x * 128 + y`.
    two: Vec<f64>,
    /// Per ASCII `x`, the sum of `two` over every ASCII `y`.
    rows: [f64; 128],
    /// A pair with a byte above ASCII.
    high: f64,
}

fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let p2 = |r: u8| f64::from_bits((1023 - u64::from(r.min(100))) << 52);
        let two: Vec<f64> = (0..128 * 128)
            .map(|i| p2(RARITY.get(i).copied().unwrap_or(40)))
            .collect();
        Tables {
            one: byte_chances(),
            rows: std::array::from_fn(|x| two[x * 128..x * 128 + 128].iter().sum()),
            two,
            high: p2(40),
        }
    })
}

/// The chance of one of the byte pairs of the classes `a b` at a position.
fn pair_chance(t: &Tables, a: &ByteSet, b: &ByteSet) -> f64 {
    let size = |s: &ByteSet| s.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    let all = size(b);
    let ascii = size(&[b[0], b[1], 0, 0]);
    let high = (all - ascii) as f64 * t.high;
    // PERF: a pair of a byte and a broad class (`.`, `[^/]`) summed as the byte's whole row
    // less the bytes the class lacks: a pair of broad classes was 65,000 terms (sagan-rules'
    // start-up, where an alternation's branches are each weighed: PERF.md "thirty-ninth run").
    let lacks = [!b[0], !b[1], 0, 0];
    let mut sum = 0.0;
    for x in members(a) {
        let x = usize::from(x);
        if x >= 128 {
            sum += all as f64 * t.high;
            continue;
        }
        let row = &t.two[x * 128..x * 128 + 128];
        sum += if ascii > 64 {
            t.rows[x] - members(&lacks).map(|y| row[usize::from(y)]).sum::<f64>() + high
        } else {
            members(&[b[0], b[1], 0, 0])
                .map(|y| row[usize::from(y)])
                .sum::<f64>()
                + high
        };
    }
    sum.min(1.0)
}

/// The chance of the window `start..start + width` of classes at a position of ordinary log
/// text: the first-order Markov estimate of [`window_chance`] from [`class_chances`].
pub(crate) fn window_of_classes(singles: &[f64], pairs: &[f64], start: usize, width: usize) -> f64 {
    if width <= 1 {
        return singles.get(start).copied().unwrap_or(1.0);
    }
    let mut p = pairs.get(start).copied().unwrap_or(1.0);
    for i in start + 1..start + width - 1 {
        let mid = singles.get(i).copied().unwrap_or(1.0);
        if mid > 0.0 {
            p *= pairs.get(i).copied().unwrap_or(1.0) / mid;
        }
    }
    p.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litscan::classes::has;

    /// A pair's chance summed plainly, every byte pair of the two classes.
    fn pair_plainly(a: &ByteSet, b: &ByteSet) -> f64 {
        let p2 = |r: u8| f64::from_bits((1023 - u64::from(r.min(100))) << 52);
        let mut sum = 0.0;
        for x in (0..=255u8).filter(|&x| has(a, x)) {
            for y in (0..=255u8).filter(|&y| has(b, y)) {
                sum += match RARITY.get(usize::from(x) * 128 + usize::from(y)) {
                    Some(&r) if x < 128 && y < 128 => p2(r),
                    _ => p2(40),
                };
            }
        }
        sum.min(1.0)
    }

    #[test]
    fn pairs_with_broad_classes_are_the_plain_sums() {
        let set = |f: &dyn Fn(u8) -> bool| -> ByteSet {
            let mut s = [0u64; 4];
            for b in (0..=255u8).filter(|&b| f(b)) {
                s[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            s
        };
        let classes = [
            set(&|b| b != b'\n'),
            set(&|b| b != b'/' && b != b'\n'),
            set(&|b| b.is_ascii_hexdigit()),
            set(&|b| b == b'p'),
            set(&|b| b >= 0x80 || b == b' '),
            set(&|b| b.is_ascii_graphic()),
        ];
        for a in &classes {
            for b in &classes {
                let (_, pairs) = class_chances(&[*a, *b]);
                let want = pair_plainly(a, b);
                assert!(
                    (pairs[0] - want).abs() <= want * 1e-9,
                    "{} against {want}",
                    pairs[0]
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_chance_ignoring_case_is_the_sum_over_case_variants(
            w in proptest::collection::vec(proptest::sample::select(&b"aZeR09 :_[\x80\xff"[..]), 2..=4),
        ) {
            let mut sum = 0.0;
            each_case_variant(&w, &mut |v| sum += exact_chance(v));
            let got = window_chance(&w, true);
            proptest::prop_assert!((got - sum).abs() <= sum * 1e-12, "{:?}: {} against {}", w, got, sum);
            proptest::prop_assert_eq!(window_chance(&w, false), exact_chance(&w));
        }
    }
}
