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

#[cfg(target_arch = "x86_64")]
use super::avx2::{KEPT, SHARED};
#[cfg(not(target_arch = "x86_64"))]
const KEPT: usize = 64;
#[cfg(not(target_arch = "x86_64"))]
const SHARED: u8 = 0x80;

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

/// How many frame places [`Sieve`] looks at.
pub(super) const SIEVE_PLACES: usize = 4;

/// A first look at a block for every window at once: Teddy's buckets over classes. Each
/// window (two per bucket beyond eight) sets its bucket's bit, at each of up to
/// [`SIEVE_PLACES`] frame places (chosen by [`sieve_places`]), in the low-nibble
/// table of every low nibble and the high-nibble table of every high nibble its class there
/// has (every nibble where the window has no class). A frame position where no bucket's bit
/// survives the places holds no window (each place's test is a superset of the class: the
/// nibbles of its bytes, crossed), so a block with no such position is left after at most
/// four tests with their tables in registers, however many windows there are. A place where
/// every window lets every byte through is left out.
#[derive(Debug, Clone)]
pub(super) struct Sieve {
    pub lo: [[u8; 16]; SIEVE_PLACES],
    pub hi: [[u8; 16]; SIEVE_PLACES],
    pub places: [usize; SIEVE_PLACES],
    /// How many of `places` (the first ones) are looked at.
    pub count: usize,
    /// Each window's shift into the frame (for the tests).
    #[cfg(test)]
    shifts: Vec<usize>,
}

impl Sieve {
    /// The sieve of `windows`, each shifted `shifts[w]` into a frame `frame` wide (their
    /// rarest classes at `back`), at the places [`sieve_places`] chooses.
    fn new(windows: &[Vec<ByteSet>], shifts: &[usize], frame: usize, back: usize) -> Sieve {
        Sieve::at(windows, shifts, &sieve_places(windows, shifts, frame, back))
    }

    /// The sieve of `windows` (each shifted `shifts[w]` into the frame) at frame `places`.
    fn at(windows: &[Vec<ByteSet>], shifts: &[usize], places: &[usize]) -> Sieve {
        let mut sieve = Sieve {
            lo: [[0; 16]; SIEVE_PLACES],
            hi: [[0; 16]; SIEVE_PLACES],
            places: [0; SIEVE_PLACES],
            count: 0,
            #[cfg(test)]
            shifts: shifts.to_vec(),
        };
        let used = (0..windows.len()).fold(0u8, |m, w| m | 1 << (w % 8));
        for &place in places.iter().take(SIEVE_PLACES) {
            let (mut lo, mut hi) = ([0u8; 16], [0u8; 16]);
            for (w, (window, &shift)) in windows.iter().zip(shifts).enumerate() {
                let bit = 1u8 << (w % 8);
                let class = place
                    .checked_sub(shift)
                    .and_then(|at| window.get(at))
                    .copied()
                    .unwrap_or([u64::MAX; 4]);
                for b in (0..=255u8).filter(|&b| has(&class, b)) {
                    lo[usize::from(b & 15)] |= bit;
                    hi[usize::from(b >> 4)] |= bit;
                }
            }
            if lo.iter().chain(&hi).all(|&t| t == used) {
                continue;
            }
            let i = sieve.count;
            (sieve.lo[i], sieve.hi[i], sieve.places[i]) = (lo, hi, place);
            sieve.count += 1;
        }
        sieve
    }

    /// What the sieve lets through at frame `place` for a window whose class there is
    /// `class` (the crossed nibbles of its bytes, as the tables hold them; every byte where
    /// the window has no class).
    fn superset(class: Option<&ByteSet>) -> ByteSet {
        let Some(class) = class else {
            return [u64::MAX; 4];
        };
        let (mut lo, mut hi) = (0u16, 0u16);
        for b in (0..=255u8).filter(|&b| has(class, b)) {
            lo |= 1 << (b & 15);
            hi |= 1 << (b >> 4);
        }
        let mut out = [0u64; 4];
        for b in 0..=255u8 {
            if lo >> (b & 15) & 1 == 1 && hi >> (b >> 4) & 1 == 1 {
                out[usize::from(b >> 6)] |= 1 << (b & 63);
            }
        }
        out
    }

    /// Whether the sieve lets frame position `f` of `hay` through (the scalar twin of the
    /// SIMD test, for the tests).
    #[cfg(test)]
    fn passes(&self, hay: &[u8], f: usize) -> bool {
        let mut bits = 0xff;
        for i in 0..self.count {
            let b = hay[f + self.places[i]];
            bits &= self.lo[i][usize::from(b & 15)] & self.hi[i][usize::from(b >> 4)];
        }
        bits != 0
    }
}

/// The frame places the sieve looks at, and how many: the set of at most [`SIEVE_PLACES`]
/// places whose estimated cost per block is least (a test per place, and the full tests of
/// every window for a block the sieve lets through), the chance that a window passes taken
/// from the rarity model (its class at each place as the sieve tests it; two places side by
/// side through the chance of the pair, others as independent); the earliest set on a tie.
/// PERF: the places around the rarest class were `[A-Z][A-Z0-9_]` for
/// `\b[A-Z][A-Z0-9_]{7,}\b` (any word of two capitals) and let 54 % of the mixed set's blocks
/// through to the full tests (PERF.md "forty-fifth run").
fn sieve_places(
    windows: &[Vec<ByteSet>],
    shifts: &[usize],
    frame: usize,
    back: usize,
) -> Vec<usize> {
    // Per window: the chance of its tested class at each place, and of each place and the
    // next together.
    let model: Vec<(Vec<f64>, Vec<f64>)> = windows
        .iter()
        .zip(shifts)
        .map(|(w, &shift)| {
            let sets: Vec<ByteSet> = (0..frame)
                .map(|p| Sieve::superset(p.checked_sub(shift).and_then(|i| w.get(i))))
                .collect();
            super::rarity::class_chances(&sets)
        })
        .collect();
    // The windows' chance at a frame position, summed.
    let chance = |places: &[usize]| -> f64 {
        model
            .iter()
            .map(|(one, two)| {
                let mut p = 1.0;
                let mut before: Option<usize> = None;
                for &at in places {
                    let single = one.get(at).copied().unwrap_or(1.0);
                    p *= match before {
                        // Given the place before holds: the pair's chance over the first's.
                        Some(b) if b + 1 == at && one[b] > 0.0 => {
                            (two.get(b).copied().unwrap_or(1.0) / one[b]).min(1.0)
                        }
                        _ => single,
                    };
                    before = Some(at);
                }
                p
            })
            .sum()
    };
    // Instructions per block (measured: `avx2::next_class_block`), and the chance that one
    // of a block's 32 positions passes.
    let cost = |places: &[usize]| -> f64 {
        let pass = 1.0 - (1.0 - chance(places).min(1.0)).powi(32);
        SIEVE_TEST_COST * places.len() as f64 + pass * FULL_TEST_COST * windows.len() as f64
    };
    let first = back
        .saturating_sub(1)
        .min(frame.saturating_sub(SIEVE_PLACES));
    let around: Vec<usize> = (first..frame).take(SIEVE_PLACES).collect();
    let mut best = (cost(&around), around);
    let mut set = Vec::with_capacity(SIEVE_PLACES);
    each_subset(frame, SIEVE_PLACES, &mut set, &mut |places| {
        let c = cost(places);
        if c < best.0 * (1.0 - 1e-9) {
            best = (c, places.to_vec());
        }
    });
    best.1
}

/// Instructions of one sieve test of a block, and of one window's full tests of a block the
/// sieve let through (`avx2::next_class_block`, under callgrind: ~250 for the mixed set's
/// four windows). PERF: 120 rather than the measured 60 a window: the IP:port rule's three
/// windows then get a fourth place (matching instructions -1.5 %), the mixed set's and
/// sagan-rules' places are the same, Debian's -0.7 %; 30 was 8 % worse for IP:port.
const SIEVE_TEST_COST: f64 = 8.0;
const FULL_TEST_COST: f64 = 120.0;

/// Call `on` with every non-empty increasing list of at most `most` numbers below `n`, each
/// extending `set`.
fn each_subset(n: usize, most: usize, set: &mut Vec<usize>, on: &mut dyn FnMut(&[usize])) {
    let from = set.last().map_or(0, |&l| l + 1);
    for x in from..n {
        set.push(x);
        on(set);
        if set.len() < most {
            each_subset(n, most, set, on);
        }
        set.pop();
    }
}

/// The compiled search.
///
/// Each window is placed in a common *frame* so that the windows' rarest classes line up: a
/// window whose rarest class is its `a`-th starts `back - a` bytes into the frame, and the SIMD
/// search reports frame positions; [`ClassScan::find`] turns a frame position back into the windows' starts with
/// [`ClassScan::at`]. A class at the same frame place in several windows is one test, computed
/// once per block (see `avx2::next_class_block`).
#[derive(Debug, Clone)]
pub(crate) struct ClassScan {
    /// Every window's classes, one after the other, in window order (for [`ClassScan::at`]).
    tables: Vec<Nibbles>,
    /// Each window's width (its classes are the next `width` tables).
    widths: Vec<usize>,
    /// The distinct tests of the frame: a class, and its place in the frame (`places`).
    tests: Vec<Nibbles>,
    places: Vec<usize>,
    /// Each window's tests (indices into `tests`, marked `SHARED` when another window has the
    /// test too), its rarest class first (the search leaves a block at the first test that
    /// holds nowhere in it), `widths` of them per window.
    order: Vec<u8>,
    /// Whether every window starts with test 0 (the search tries it once a block first).
    gated: bool,
    /// Whether some test is shared by windows.
    sharing: bool,
    /// The frame's width: the farthest byte any window reaches, plus one.
    frame: usize,
    /// The largest shift of a window into the frame.
    back: usize,
    /// Each window's shift into the frame: window `w` seen at frame position `f` starts at
    /// `f + shifts[w]`.
    shifts: Vec<usize>,
    /// A first look at each block for all windows at once.
    sieve: Sieve,
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
        // PERF: the class rarest in log text first, not the smallest: ` ` is one byte and
        // in every block of a log.
        let orders: Vec<Vec<usize>> = windows
            .iter()
            .map(|w| {
                let (chances, _) = super::rarity::class_chances(w);
                let mut order: Vec<usize> = (0..w.len()).collect();
                order.sort_by(|&a, &b| chances[a].total_cmp(&chances[b]));
                order
            })
            .collect();
        // Each window shifted so that its rarest class sits where the others' do.
        let anchor = |o: &Vec<usize>| o.first().copied().unwrap_or(0);
        let back = orders.iter().map(anchor).max().unwrap_or(0);
        let mut keys: Vec<(ByteSet, usize)> = Vec::new();
        let mut order = Vec::new();
        let mut frame = 0;
        let mut shifts = Vec::with_capacity(windows.len());
        for (w, o) in windows.iter().zip(&orders) {
            let shift = back - anchor(o);
            shifts.push(shift);
            frame = frame.max(shift + w.len());
            for &i in o {
                let key = (w[i], shift + i);
                let k = match keys.iter().position(|x| *x == key) {
                    Some(k) => k,
                    None => {
                        keys.push(key);
                        keys.len() - 1
                    }
                };
                // At most MAX_WINDOWS * MAX_WIDTH = 128 tests: the index fits beside SHARED.
                order.push(u8::try_from(k).ok().filter(|&k| k & SHARED == 0)?);
            }
        }
        // Tests more than one window has are marked (the search keeps their verdict for a
        // block); when every window starts with the same one, the search tries it first.
        let mut uses = vec![0usize; keys.len()];
        for &k in &order {
            uses[usize::from(k)] += 1;
        }
        let mut t = 0;
        let mut gated = true;
        for w in windows {
            gated &= order[t] == 0;
            t += w.len();
        }
        for k in &mut order {
            if uses[usize::from(*k)] > 1 && usize::from(*k) < KEPT {
                *k |= SHARED;
            }
        }
        // Without a shared test the tests are numbered in order (each key new when met),
        // which the search then relies on; anything else takes the general path.
        let sharing = uses.iter().any(|&n| n > 1)
            || !order.iter().enumerate().all(|(i, &k)| usize::from(k) == i);
        Some(ClassScan {
            sieve: Sieve::new(windows, &shifts, frame, back),
            tables: windows.iter().flatten().map(Nibbles::of).collect(),
            widths: windows.iter().map(Vec::len).collect(),
            tests: keys.iter().map(|(c, _)| Nibbles::of(c)).collect(),
            places: keys.iter().map(|&(_, p)| p).collect(),
            order,
            gated: gated && windows.len() > 1,
            sharing,
            frame,
            back,
            shifts,
        })
    }

    /// Whether some window's classes hold at `hay[p..]` (the window wholly inside `hay`).
    #[inline]
    pub(crate) fn at(&self, hay: &[u8], p: usize) -> bool {
        let mut t = 0;
        for &w in &self.widths {
            let fits = p + w <= hay.len();
            if fits && (0..w).all(|i| self.tables[t + i].holds(hay[p + i])) {
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
                // A window starting at s is seen at frame position s - shift (shift <= back):
                // the frames start `back` before `from`; windows starting before `back` have
                // no frame and are looked at one by one.
                let mut checked = from;
                if from < self.back {
                    let first = (from..self.back.min(hay.len())).find(|&p| self.at(hay, p));
                    if first.is_some() {
                        return first;
                    }
                    checked = self.back;
                }
                q = from.saturating_sub(self.back);
                let mut each = [0u32; MAX_WINDOWS];
                loop {
                    // SAFETY: the CPU has AVX2 (checked above); `build` made `order`'s
                    // indices below `tests.len()` = `places.len()` (and below `KEPT` where
                    // marked `SHARED`), `widths` sum to `order.len()`, and every place is below
                    // `frame`.
                    let (at, lanes) = unsafe {
                        use super::avx2::next_class_block as f;
                        // The arms below name every count up to SIEVE_PLACES.
                        const _: () = assert!(SIEVE_PLACES == 4);
                        let search = match (self.sharing, self.sieve.count) {
                            (true, 0) => f::<true, 0>,
                            (true, 1) => f::<true, 1>,
                            (true, 2) => f::<true, 2>,
                            (true, 3) => f::<true, 3>,
                            (true, _) => f::<true, SIEVE_PLACES>,
                            (false, 0) => f::<false, 0>,
                            (false, 1) => f::<false, 1>,
                            (false, 2) => f::<false, 2>,
                            (false, 3) => f::<false, 3>,
                            (false, _) => f::<false, SIEVE_PLACES>,
                        };
                        search(
                            &self.sieve,
                            &self.tests,
                            &self.places,
                            &self.order,
                            &self.widths,
                            self.gated,
                            self.frame,
                            hay,
                            q,
                            &mut each,
                        )
                    };
                    if lanes == 0 {
                        q = at.max(checked);
                        break;
                    }
                    // Window w holds exactly where its lanes say: at frame position
                    // at + j it starts at at + j + shifts[w]. The first start at or after
                    // `checked` (a frame before `from` may hold windows that start before it).
                    let mut best = usize::MAX;
                    for (&m, &shift) in each.iter().zip(&self.shifts) {
                        let skip = checked.saturating_sub(at + shift);
                        let m = if skip >= 32 { 0 } else { m >> skip << skip };
                        if m != 0 {
                            best = best.min(at + m.trailing_zeros() as usize + shift);
                        }
                    }
                    if best != usize::MAX {
                        // Windows of later frames start at at + 32 or after: one with a
                        // smaller shift may start before `best`.
                        let lo = (at + 32).max(checked);
                        return (lo..best).find(|&p| self.at(hay, p)).or(Some(best));
                    }
                    q = at + 32;
                }
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
        let mut sieves = 0;
        for round in 0..2_000 {
            // Classes of many shapes: ranges, scattered bytes, high bytes, nine+ nibble rows;
            // few windows, or many (two per bucket of the sieve beyond eight).
            let n = 1
                + (next()
                    % if round % 2 == 0 {
                        3
                    } else {
                        MAX_WINDOWS as u64
                    }) as usize;
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
            // The sieve lets through every frame position where a window starts at its
            // shift into the frame.
            {
                let sieve = &scan.sieve;
                sieves += usize::from(sieve.count > 0);
                for (w, &shift) in windows.iter().zip(&sieve.shifts) {
                    for f in 0..hay.len().saturating_sub(scan.frame) {
                        let p = f + shift;
                        let holds = w.iter().enumerate().all(|(i, s)| has(s, hay[p + i]));
                        assert!(!holds || sieve.passes(&hay, f), "round {round}: sieved {f}");
                    }
                }
            }
            // Near the start (windows starting before any frame) or anywhere (frames before
            // `from` holding windows that start before it).
            let from = if round % 2 == 0 {
                (next() % 16) as usize
            } else {
                (next() % hay.len() as u64) as usize
            };
            let want = (from..hay.len()).find(|&p| scan.at(&hay, p));
            assert_eq!(scan.find(&hay, from, hay.len()), want, "round {round}");
            let to = hay.len() - (next() % 40) as usize;
            let from = from.min(to);
            let want = (from..to).find(|&p| scan.at(&hay[..to], p));
            assert_eq!(scan.find(&hay, from, to), want, "round {round} to {to}");
        }
        // (A sieve that would let nearly every block through is left out: random broad
        // classes.)
        assert!(sieves > 1_500, "{sieves} searches with a sieve");
    }

    /// One rule's alternatives (`[0-9]{1,3}:[0-9]` as three windows) share their tests: the
    /// windows are aligned at their rarest class, each shared test counted once, and the
    /// search finds what the scalar check finds.
    #[test]
    fn windows_of_one_rule_share_their_tests() {
        let d = set(b'0'..=b'9');
        let c = set([b':']);
        let windows = vec![vec![d, c, d], vec![d, d, c, d], vec![d, d, d, c, d]];
        let Some(scan) = ClassScan::build(&windows) else {
            panic!("windows refused");
        };
        assert!(scan.sharing && scan.gated, "{scan:?}");
        // Aligned at `:`: a digit before it, `:`, a digit after it are one test each.
        assert_eq!(
            (scan.back, scan.frame, scan.tests.len()),
            (3, 5, 5),
            "{scan:?}"
        );
        let hay = b"at 12:30 and 7:1, 123:4567 x:9 1:".repeat(9);
        for from in 0..hay.len() {
            let want = (from..hay.len()).find(|&p| scan.at(&hay, p));
            assert_eq!(scan.find(&hay, from, hay.len()), want, "from {from}");
        }
    }

    /// Windows are shifted into the frame by different amounts: a window seen in a block's
    /// last frame position may start after one seen only in the next block (`b` at 65 is
    /// window `[b]` at frame 63; `ab\xC3` at 64, aligned at its rare third byte, is at frame
    /// 64): the first start is the answer, not the first found.
    #[test]
    fn a_window_of_the_next_block_may_start_first() {
        let windows = vec![
            vec![set([b'a']), set([b'b']), set([0xC3])],
            vec![set([b'b'])],
        ];
        let Some(scan) = ClassScan::build(&windows) else {
            panic!("windows refused");
        };
        assert_eq!(scan.shifts, [0, 2], "{scan:?}");
        let mut hay = vec![b' '; 200];
        hay[64..67].copy_from_slice(b"ab\xC3");
        assert_eq!(scan.find(&hay, 0, hay.len()), Some(64));
        assert_eq!(scan.find(&hay, 65, hay.len()), Some(65));
    }

    /// The sieve looks where the windows are rarest, each place where some window has a
    /// class: a lone byte is one test; `\s[+-]\d{4}` aligned at `[+-]` its space and sign (a
    /// third place, a digit, would cost more tests than it saves).
    #[test]
    fn the_sieve_looks_where_a_window_has_a_class() {
        let one = ClassScan::build(&[vec![set([b'?'])]]);
        assert_eq!(
            one.map(|s| (s.sieve.count, s.sieve.places[0])),
            Some((1, 0))
        );
        let d = set(b'0'..=b'9');
        let zone = vec![set(*b" \t"), set(*b"+-"), d, d, d, d];
        let Some(scan) = ClassScan::build(&[zone]) else {
            panic!("window refused");
        };
        let places = &scan.sieve.places[..scan.sieve.count];
        assert_eq!((scan.back, places), (1, &[0, 1][..]), "{scan:?}");
        let hay = b"2015-10-18 12:00:01 -0700 x +12 -1234 ".repeat(3);
        let passed: Vec<usize> = (0..hay.len() - scan.frame)
            .filter(|&f| scan.sieve.passes(&hay, f))
            .collect();
        // ` -0700`, ` +12` (three places hold; the window does not) and ` -1234`.
        assert_eq!(passed, [19, 27, 31, 57, 65, 69, 95, 103, 107], "{scan:?}");
        assert!(!scan.at(&hay, 27) && scan.at(&hay, 31));
    }

    /// The mixed bench set's windows (an `IP:port` three ways, aligned at `:`, and an
    /// upper-case identifier, `[A-Z]` then seven `[A-Z0-9_]`): the sieve's places are chosen
    /// by the rarity model, and on log text they let through fewer positions than as many
    /// places side by side from the rarest class (where `[A-Z][A-Z0-9_]` is any word of two
    /// capitals), and every window.
    #[test]
    fn the_sieve_looks_where_the_windows_are_rare_together() {
        let d = set(b'0'..=b'9');
        let upper = set(b'A'..=b'Z');
        let mut word = d;
        for b in (b'A'..=b'Z').chain([b'_']) {
            word[usize::from(b >> 6)] |= 1 << (b & 63);
        }
        let (dot, colon) = (set([b'.']), set([b':']));
        let windows = vec![
            vec![d, dot, d, colon, d],
            vec![d, dot, d, d, colon, d],
            vec![d, dot, d, d, d, colon, d],
            vec![upper, word, word, word, word, word, word, word],
        ];
        let Some(scan) = ClassScan::build(&windows) else {
            panic!("windows refused");
        };
        let first = scan.back.saturating_sub(1);
        let side_by_side: Vec<usize> = (first..first + scan.sieve.count).collect();
        let around = Sieve::at(&windows, &scan.sieve.shifts, &side_by_side);
        let hay =
            b"2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: \
            Created MRAppMaster for application appattempt_1445144423722_0020_000001\n\
            Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; uid=0 euid=0 \
            tty=NODEVssh ruser= rhost=218.188.2.4\n\
            081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block \
            blk_38865049064139660 terminating ERROR WARN FATAL HTTP GET POST\n\
            [Sun Dec 04 04:47:44 2005] [error] mod_jk child workerEnv in error state 6 \
            proxy 10.10.34.12:8080 connected, v1.2.3 at 12.5 s\n"
                .repeat(4);
        let end = hay.len() - scan.frame;
        let passes = |s: &Sieve| (0..end).filter(|&f| s.passes(&hay, f)).count();
        let (chosen, near) = (passes(&scan.sieve), passes(&around));
        assert!(
            chosen * 3 < near * 2,
            "{chosen} against {near}: {:?}",
            scan.sieve
        );
        for f in 0..end {
            let p = |w: usize| f + scan.sieve.shifts[w];
            let held = |w: usize| {
                windows[w]
                    .iter()
                    .enumerate()
                    .all(|(i, c)| has(c, hay[p(w) + i]))
            };
            assert!(
                !(0..windows.len()).any(held) || scan.sieve.passes(&hay, f),
                "sieved {f}"
            );
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
