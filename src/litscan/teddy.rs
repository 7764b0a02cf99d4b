//! Few literals searched with nibble tables: the literal search of small rule sets.
//!
//! Role: for at most [`MAX_LITERALS`] literals (a set of ten rules has about fifteen), find the
//! positions where one of their windows of [`WIDTH`] bytes may start, faster than the hashed
//! filter of `mod.rs` (which gathers one filter word per window: rules10's search alone ran at
//! 3.1 GB/s, and it was half the reader's time).
//! Shape: Hyperscan's "Teddy". Every literal contributes one window (its rarest [`WIDTH`]
//! bytes, both cases of each letter when it is compared ignoring case); the literals are put in
//! eight groups, and for each position `k` of the window two 16-entry tables give, per low and
//! per high nibble of a byte, the groups whose windows allow that nibble there. A position
//! starts a candidate window when, for every `k`, the byte at `k` has its two nibbles allowed
//! for a common group (`lo[k][b & 15] & hi[k][b >> 4]`, and-ed over `k`). With AVX2 that is two
//! `vpshufb` per position `k` and 32 bytes. A group holding several literals allows every
//! combination of their nibbles (a superset: more candidates, never a miss); literals are
//! grouped so that the combinations added are the least likely in log text.
//! Invariants: a position where a literal's window occurs always has that literal's group bit
//! set (nothing missed); candidates are verified in full by the caller (`LitScan::each`).
//! Rejected alternative: the hashed filter for every set (the reference for large sets, where
//! eight groups of many literals would pass most positions).

use super::classes::ByteSet;
use super::rarity::{byte_chances, class_chances, rarest_base, window_of_classes};
use super::{Entry, Needle};

/// The window's width: every literal of the search has at least three bytes. (Four, where
/// every literal has four, passed fewer windows but cost more per byte: rules10's search 3.9
/// against 4.6 GB/s; see PERF.md "sixteenth run".)
pub(super) const WIDTH: usize = 3;

/// Most literals the tables take (grouping them costs start-up time; beyond this many, eight
/// groups pass too many windows anyway).
pub(super) const MAX_LITERALS: usize = 32;

/// Most chance ([`Teddy::chance`]) that a position of log text passes some group: above it,
/// the verification of windows that pass in vain costs more than the hashed filter's gathers
/// (rules100's first 15 rules, estimated 0.002: 3.7–4.1 GB/s, the filter 2.7; its first 20,
/// 0.0085: 1.3 GB/s, the filter 2.5).
pub(super) const MAX_CHANCE: f64 = 0.003;

/// The compiled tables.
#[derive(Debug, Clone)]
pub(super) struct Teddy {
    /// Per window position, per low nibble: the groups allowing it.
    pub lo: [[u8; 16]; WIDTH],
    /// Per window position, per high nibble: the groups allowing it.
    pub hi: [[u8; 16]; WIDTH],
    /// Group `g` is `entries[starts[g]..starts[g + 1]]`.
    starts: [u32; 9],
    /// (needle index, offset of its window in the needle).
    entries: Box<[Entry]>,
}

/// One group's allowed nibbles per window position (low, high), as bit sets.
type Nibs = [(u16, u16); WIDTH];

impl Teddy {
    /// The tables for `needles`, or `None` when there are more than [`MAX_LITERALS`], one is
    /// shorter than [`WIDTH`], or the groups would pass more than `max_chance` of the positions
    /// of ordinary log text (estimated; [`MAX_CHANCE`] but in tests).
    /// `twin(i)`: needle `i` has no entries (it is reported with an earlier one).
    pub(super) fn new(
        needles: &[Needle],
        max_chance: f64,
        twin: &dyn Fn(usize) -> bool,
    ) -> Option<Teddy> {
        if needles.is_empty()
            || needles.len() > MAX_LITERALS
            || needles.iter().any(|n| n.bytes.len() < WIDTH)
        {
            return None;
        }
        // Each literal's window and the nibbles it allows at each position.
        let mut windows: Vec<(usize, Nibs)> = Vec::with_capacity(needles.len());
        for n in needles {
            let off = rarest_base(&n.bytes, n.ci, WIDTH, 1);
            let mut nibs: Nibs = [(0, 0); WIDTH];
            for (k, nib) in nibs.iter_mut().enumerate() {
                let b = n.bytes[off + k];
                for v in variants(b, n.ci) {
                    nib.0 |= 1 << (v & 15);
                    nib.1 |= 1 << (v >> 4);
                }
            }
            windows.push((off, nibs));
        }
        let groups = group(&windows, &byte_chances());
        let chance: f64 = groups.iter().map(|(_, n)| markov_chance(n)).sum();
        if chance > max_chance {
            return None;
        }
        let mut lo = [[0u8; 16]; WIDTH];
        let mut hi = [[0u8; 16]; WIDTH];
        let mut starts = [0u32; 9];
        let mut entries = Vec::with_capacity(needles.len());
        for (g, (members, nibs)) in groups.iter().enumerate() {
            let bit = 1u8 << g;
            // A group's tables are the union of its members' nibbles at each position (the
            // combinations across members come in there).
            for (k, &(l, h)) in nibs.iter().enumerate() {
                for x in 0..16 {
                    if l >> x & 1 == 1 {
                        lo[k][x] |= bit;
                    }
                    if h >> x & 1 == 1 {
                        hi[k][x] |= bit;
                    }
                }
            }
            for &i in members.iter().filter(|&&i| !twin(i)) {
                let off = i32::try_from(windows[i].0).ok()?;
                entries.push(Entry::new(i as u32, needles.get(i)?, off)?);
            }
            starts[g + 1] = entries.len() as u32;
        }
        for g in groups.len()..8 {
            starts[g + 1] = entries.len() as u32;
        }
        Some(Teddy {
            lo,
            hi,
            starts,
            entries: entries.into_boxed_slice(),
        })
    }

    /// The groups whose tables allow a window at `hay[w..]` (0 when fewer than [`WIDTH`] bytes
    /// are left).
    #[inline]
    pub(super) fn at(&self, hay: &[u8], w: usize) -> u8 {
        let Some(win) = hay.get(w..w + WIDTH) else {
            return 0;
        };
        let mut groups = 0xff;
        for (k, &b) in win.iter().enumerate() {
            groups &= self.lo[k][usize::from(b & 15)] & self.hi[k][usize::from(b >> 4)];
        }
        groups
    }

    /// The (needle, window offset) entries of group `g`.
    #[inline]
    pub(super) fn group(&self, g: usize) -> &[Entry] {
        let (a, b) = (self.starts[g] as usize, self.starts[g + 1] as usize);
        self.entries.get(a..b).unwrap_or(&[])
    }
}

/// `b`, and its other case when `ci` and it is a letter.
fn variants(b: u8, ci: bool) -> impl Iterator<Item = u8> {
    let other = (ci && b.is_ascii_alphabetic()).then_some(b ^ 0x20);
    std::iter::once(b).chain(other)
}

/// At most eight groups of the windows' indices: start with one group a window, then merge the
/// two groups whose merged tables add the least chance of a window in log text, until eight are
/// left.
fn group(windows: &[(usize, Nibs)], bytes: &[f64; 256]) -> Vec<(Vec<usize>, Nibs)> {
    let mut groups: Vec<(Vec<usize>, Nibs)> = windows
        .iter()
        .enumerate()
        .map(|(i, (_, n))| (vec![i], *n))
        .collect();
    while groups.len() > 8 {
        let chances: Vec<f64> = groups.iter().map(|(_, n)| chance(n, bytes)).collect();
        let mut best = (f64::MAX, 0, 1);
        for a in 0..groups.len() {
            for b in a + 1..groups.len() {
                let merged = chance(&union(&groups[a].1, &groups[b].1), bytes);
                let added = merged - chances[a] - chances[b];
                if added < best.0 {
                    best = (added, a, b);
                }
            }
        }
        let (_, a, b) = best;
        let (members, nibs) = groups.swap_remove(b);
        groups[a].0.extend(members);
        groups[a].1 = union(&groups[a].1, &nibs);
    }
    groups
}

fn union(a: &Nibs, b: &Nibs) -> Nibs {
    let mut u = *a;
    for (x, y) in u.iter_mut().zip(b) {
        x.0 |= y.0;
        x.1 |= y.1;
    }
    u
}

/// The chance that a group's tables pass a position of ordinary log text (every combination
/// of its nibbles at each position; positions taken as independent: this only ranks merges).
fn chance(nibs: &Nibs, bytes: &[f64; 256]) -> f64 {
    nibs.iter()
        .map(|&(lo, hi)| {
            allowed(lo, hi)
                .map(|b| bytes[usize::from(b)])
                .sum::<f64>()
                .min(1.0)
        })
        .product()
}

/// [`chance`] with the first-order Markov model of `rarity` (pairs of positions), for the
/// final groups.
fn markov_chance(nibs: &Nibs) -> f64 {
    let sets: Vec<ByteSet> = nibs
        .iter()
        .map(|&(lo, hi)| {
            let mut s: ByteSet = [0; 4];
            for b in allowed(lo, hi) {
                s[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            s
        })
        .collect();
    let (singles, pairs) = class_chances(&sets);
    window_of_classes(&singles, &pairs, 0, WIDTH)
}

/// The bytes a position's tables allow: every combination of its low and high nibbles.
fn allowed(lo: u16, hi: u16) -> impl Iterator<Item = u8> {
    let bits = |m: u16| (0..16u8).filter(move |x| m >> x & 1 == 1);
    bits(hi).flat_map(move |h| bits(lo).map(move |l| h << 4 | l))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::litscan::test_needles as needles;

    #[test]
    fn every_window_passes_its_groups_tables() {
        let lits: Vec<String> = (0..MAX_LITERALS)
            .map(|i| format!("lit{}eral{}x", (b'a' + i as u8) as char, i))
            .collect();
        let ns: Vec<Needle> = lits
            .iter()
            .enumerate()
            .map(|(i, s)| Needle {
                bytes: s.as_bytes().into(),
                ci: i % 3 == 0,
                rule: i as u32,
            })
            .collect();
        let t = Teddy::new(&ns, f64::INFINITY, &|_| false).unwrap();
        let mut seen = vec![false; ns.len()];
        for g in 0..8 {
            for e in t.group(g) {
                let (n, off) = (e.needle, e.off);
                seen[n as usize] = true;
                let lit = &ns[n as usize].bytes;
                let upper = lit.to_ascii_uppercase();
                assert_ne!(t.at(lit, off as usize) & (1 << g), 0, "{g} {n}");
                if ns[n as usize].ci {
                    assert_ne!(t.at(&upper, off as usize) & (1 << g), 0, "{g} {n} upper");
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert!(Teddy::new(&needles(&[("ab", false)]), f64::INFINITY, &|_| false).is_none());
        assert!(Teddy::new(&[], f64::INFINITY, &|_| false).is_none());
    }

    #[test]
    fn one_literal_a_group_is_exact() {
        let lits = [("Connection refused", false), ("panic", true)];
        let t = Teddy::new(&needles(&lits), MAX_CHANCE, &|_| false).unwrap();
        let hay = b"connection REFUSED kernel PANIC";
        let hits: Vec<usize> = (0..hay.len()).filter(|&w| t.at(hay, w) != 0).collect();
        // Only the case-insensitive literal's window occurs ("panic" in upper case).
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(t.at(b"xy", 0), 0);
    }
}
