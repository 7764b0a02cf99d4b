//! Windows of byte classes searched at once: candidate lines for rules without literals.
//!
//! Role: a rule such as `\b[A-Z][A-Z0-9_]{7,}\b` or `(\d{1,3}\.){3}\d{1,3}:\d+` has no
//! required literal, but every match holds a run of bytes from known classes at consecutive
//! positions (`[A-Z]` then seven `[A-Z0-9_]`; a digit, `.`, a digit). [`ClassScan`] finds the
//! positions where such a *class window* occurs, for up to [`MAX_WINDOWS`] windows of up to
//! [`MAX_WIDTH`] classes at once; the lines holding one are the only candidates the rules'
//! automaton then confirms (instead of running the automaton over every byte).
//!
//! Shape: Hyperscan's "shufti". A class is split by the high nibble of its bytes: the high
//! nibbles whose sets of low nibbles are equal share a bucket (one bit of eight); a byte `b` is
//! in the class when `lo[b & 15] & hi[b >> 4]` is not zero. With AVX2 that is two `vpshufb` per
//! class and 32 bytes; without it [`ClassScan::new`] declines (a byte-at-a-time scan is not
//! faster than the automaton it would stand in front of).
//! Invariants: never misses a position where a window's classes all hold (a class with more
//! than eight distinct low-nibble sets shares its last bucket: a superset, still no miss);
//! reported positions are those where [`ClassScan::at`] holds, AVX2 or not; no allocation
//! during a search.

/// A set of bytes: bit `b % 64` of word `b / 64`.
pub(crate) type ByteSet = [u64; 4];

/// Whether `b` is in `s`.
#[inline]
pub(crate) fn has(s: &ByteSet, b: u8) -> bool {
    s[usize::from(b >> 6)] >> (b & 63) & 1 == 1
}

/// Most classes in one window.
pub(crate) const MAX_WIDTH: usize = 8;
/// Most windows searched at once.
pub(crate) const MAX_WINDOWS: usize = 16;

/// One class as two nibble tables.
#[derive(Debug, Clone, Copy)]
pub(super) struct Nibbles {
    pub lo: [u8; 16],
    pub hi: [u8; 16],
}

impl Nibbles {
    fn of(s: &ByteSet) -> Nibbles {
        // Per high nibble, the set of low nibbles present.
        let mut rows = [0u16; 16];
        for b in 0..=255u8 {
            if has(s, b) {
                rows[usize::from(b >> 4)] |= 1 << (b & 15);
            }
        }
        let mut buckets: Vec<u16> = Vec::with_capacity(8);
        let mut hi = [0u8; 16];
        for (h, &row) in rows.iter().enumerate() {
            if row == 0 {
                continue;
            }
            let k = match buckets.iter().position(|&r| r == row) {
                Some(k) => k,
                None if buckets.len() < 8 => {
                    buckets.push(row);
                    buckets.len() - 1
                }
                None => {
                    // A ninth distinct set: merged into the last bucket (a superset).
                    buckets[7] |= row;
                    7
                }
            };
            hi[h] = 1 << k;
        }
        let mut lo = [0u8; 16];
        for (k, &row) in buckets.iter().enumerate() {
            for (l, t) in lo.iter_mut().enumerate() {
                if row >> l & 1 == 1 {
                    *t |= 1 << k;
                }
            }
        }
        Nibbles { lo, hi }
    }

    #[inline]
    fn holds(&self, b: u8) -> bool {
        self.lo[usize::from(b & 15)] & self.hi[usize::from(b >> 4)] != 0
    }
}

/// The compiled search.
#[derive(Debug, Clone)]
pub(crate) struct ClassScan {
    /// Every window's classes, one after the other, each window's rarest class first (the
    /// search leaves a block at the first class that holds nowhere in it).
    tables: Vec<Nibbles>,
    /// The position in its window of each class of `tables`.
    offsets: Vec<usize>,
    /// Each window's width (its classes are the next `width` tables).
    widths: Vec<usize>,
    widest: usize,
}

impl ClassScan {
    /// The search for `windows` (each 1..=[`MAX_WIDTH`] classes, at most [`MAX_WINDOWS`]), or
    /// `None` when there is nothing to search or the CPU cannot search it fast (no AVX2).
    pub(crate) fn new(windows: &[Vec<ByteSet>]) -> Option<ClassScan> {
        Self::build(windows).filter(|_| super::has_avx2())
    }

    fn build(windows: &[Vec<ByteSet>]) -> Option<ClassScan> {
        let ok = |w: &Vec<ByteSet>| (1..=MAX_WIDTH).contains(&w.len());
        if windows.is_empty() || windows.len() > MAX_WINDOWS || !windows.iter().all(ok) {
            return None;
        }
        let mut offsets = Vec::new();
        for w in windows {
            // PERF: the class rarest in log text first, not the smallest: ` ` is one byte and
            // in every block of a log.
            let (chances, _) = super::rarity::class_chances(w);
            let mut order: Vec<usize> = (0..w.len()).collect();
            order.sort_by(|&a, &b| chances[a].total_cmp(&chances[b]));
            offsets.extend(order);
        }
        let mut tables = Vec::with_capacity(offsets.len());
        let mut t = 0;
        for w in windows {
            tables.extend(offsets[t..t + w.len()].iter().map(|&i| Nibbles::of(&w[i])));
            t += w.len();
        }
        Some(ClassScan {
            tables,
            offsets,
            widths: windows.iter().map(Vec::len).collect(),
            widest: windows.iter().map(Vec::len).max().unwrap_or(1),
        })
    }

    /// Whether some window's classes hold at `hay[p..]` (the window wholly inside `hay`).
    #[inline]
    pub(crate) fn at(&self, hay: &[u8], p: usize) -> bool {
        let mut t = 0;
        for &w in &self.widths {
            let fits = p + w <= hay.len();
            if fits && (t..t + w).all(|k| self.tables[k].holds(hay[p + self.offsets[k]])) {
                return true;
            }
            t += w;
        }
        false
    }

    /// The first position `p` in `from..to` where a window occurs wholly inside `hay[..to]`.
    pub(crate) fn find(&self, hay: &[u8], from: usize, to: usize) -> Option<usize> {
        let hay = hay.get(..to)?;
        let mut q = from;
        #[cfg(target_arch = "x86_64")]
        {
            if super::has_avx2() {
                // SAFETY: the CPU has AVX2 (checked above); `widths`, `tables` and `offsets`
                // agree (`build`: offsets below their window's width), and `widest` is the
                // largest width.
                let (at, lanes) = unsafe {
                    super::avx2::next_class_block(
                        &self.tables,
                        &self.offsets,
                        &self.widths,
                        self.widest,
                        hay,
                        q,
                    )
                };
                if lanes != 0 {
                    return Some(at + lanes.trailing_zeros() as usize);
                }
                q = at;
            }
        }
        (q..hay.len()).find(|&p| self.at(hay, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(bytes: impl IntoIterator<Item = u8>) -> ByteSet {
        let mut s = [0u64; 4];
        for b in bytes {
            s[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        s
    }

    /// Every position where a window's exact classes hold is found; what `find` reports is
    /// the first position where `at` holds (AVX2 and the scalar loop agree).
    #[test]
    fn finds_every_window_and_agrees_with_the_scalar_check() {
        let mut next = crate::rules::xorshift(0x2545_F491_4F6C_DD1D);
        for round in 0..300 {
            // Classes of many shapes: ranges, scattered bytes, high bytes, nine+ nibble rows.
            let n = 1 + (next() % 3) as usize;
            let windows: Vec<Vec<ByteSet>> = (0..n)
                .map(|_| {
                    let w = 1 + (next() % MAX_WIDTH as u64) as usize;
                    (0..w)
                        .map(|_| match next() % 4 {
                            0 => set(b'0'..=b'9'),
                            1 => set((0..=255u8).filter(|_| next().is_multiple_of(8))),
                            2 => set([b'.', b':', 0xC3]),
                            _ => set(b'A'..=b'Z'),
                        })
                        .collect()
                })
                .collect();
            let Some(scan) = ClassScan::build(&windows) else {
                panic!("round {round}: windows refused");
            };
            let alphabet = b"0123456789.:ABCZaz \n\xC3\xA9";
            let hay: Vec<u8> = (0..200 + (next() % 300) as usize)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let exact = |p: usize| {
                windows.iter().any(|w| {
                    p + w.len() <= hay.len()
                        && w.iter().enumerate().all(|(i, s)| has(s, hay[p + i]))
                })
            };
            for p in 0..hay.len() {
                assert!(!exact(p) || scan.at(&hay, p), "round {round}: missed {p}");
            }
            let from = (next() % 50) as usize;
            let want = (from..hay.len()).find(|&p| scan.at(&hay, p));
            assert_eq!(scan.find(&hay, from, hay.len()), want, "round {round}");
            let to = hay.len() - (next() % 40) as usize;
            let want = (from..to).find(|&p| scan.at(&hay[..to], p));
            assert_eq!(scan.find(&hay, from, to), want, "round {round} to {to}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_search() {
        assert!(ClassScan::build(&[]).is_none());
        assert!(ClassScan::build(&[vec![]]).is_none());
        assert!(ClassScan::build(&[vec![set([1]); MAX_WIDTH + 1]]).is_none());
        assert!(ClassScan::build(&vec![vec![set([1])]; MAX_WINDOWS + 1]).is_none());
    }
}
