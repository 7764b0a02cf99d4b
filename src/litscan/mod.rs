//! Many literals searched at once: the first stage of matching when rules have required literals.
//!
//! Role: given the literals every rule's matches must contain (see `rules::required_literals`),
//! find the lines of a buffer that hold any of them, and for one line, which rules' literals it
//! holds. Only those rules are then checked exactly, each with its own small regex (the
//! "literal-first" design of Hyperscan: a literal hit names the rules to confirm).
//!
//! Shape: a hashed filter over short windows (a cousin of Hyperscan's FDR). Every literal
//! contributes `stride` consecutive windows of `width` bytes (3 or 4), placed where they are
//! rarest in log text, to a bit table of 2^12..2^18 bits (a literal compared ignoring case enters
//! every case variant of its windows); the search reads one `u32` every `stride` bytes (eight at
//! once with AVX2), hashes it and tests one bit. Any occurrence of a literal covers `stride` consecutive window positions, one of
//! which is tested, so nothing is missed. A set bit sends the position to its bucket of
//! (literal, offset) entries, each compared in full (exact bytes, or ASCII case-insensitively for
//! literals taken from `(?i)` rules).
//!
//! Invariants: no allocation during a search; never reports a literal that is not in the
//! haystack between the given bounds (windows are verified before they are reported); every
//! occurrence between the bounds is reported by [`LitScan::each`].
//!
//! Rejected alternatives (measured, PERF.md): aho-corasick's DFA over the 219 literals of the
//! 100-rule benchmark set (391–431 MB/s on a case-folded copy: slower than the lazy DFA of all
//! rules); Teddy (limited to 64 literals); case-folded literals searched in a lowered copy of the
//! buffer (an extra pass: the filter holds every case variant of such a literal's windows).

#[cfg(target_arch = "x86_64")]
mod avx2;
pub(crate) mod classes;
mod placement;
mod rarity;
mod teddy;

use placement::stream_base;
pub(crate) use placement::WindowCounts;
pub(crate) use rarity::{class_chances, literals_chance, window_of_classes};
use rarity::{each_case_variant, rarest_base};

/// The first `\n` in `hay` (a short line found faster than by memchr's calls).
#[inline(always)]
pub(crate) fn find_newline(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    return avx2::find_newline(hay);
    #[cfg(not(target_arch = "x86_64"))]
    return memchr::memchr(b'\n', hay);
}

/// Where `needle` starts in `hay` if it does within the first few places (a literal found
/// again a line later, faster than by a searcher's call); `Err(i)`: it starts at none of the
/// places before `i`, search on from there.
#[inline(always)]
pub(crate) fn find_literal_near(hay: &[u8], needle: &[u8]) -> Result<usize, usize> {
    #[cfg(target_arch = "x86_64")]
    return avx2::find_literal_near(hay, needle);
    #[cfg(not(target_arch = "x86_64"))]
    return Err(0);
}

/// The last `\n` in `hay` (see [`find_newline`]).
#[inline(always)]
pub(crate) fn rfind_newline(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    return avx2::rfind_newline(hay);
    #[cfg(not(target_arch = "x86_64"))]
    return memchr::memrchr(b'\n', hay);
}

/// One literal and the rule it stands for.
#[derive(Debug, Clone)]
pub struct Needle {
    /// The bytes; lower case when `ci`.
    pub bytes: Box<[u8]>,
    /// Compare ignoring ASCII case.
    pub ci: bool,
    /// The rule (an index the caller chose).
    pub rule: u32,
}

/// The compiled search.
#[derive(Debug)]
pub struct LitScan {
    needles: Vec<Needle>,
    width: usize,
    stride: usize,
    /// Clears bit 5 of each byte in the window (ASCII case) and, for width 3, the fourth byte.
    mask: u32,
    shift: u32,
    /// The CPU has AVX2 (stride 4 then tests eight windows at once).
    avx2: bool,
    filter: Box<[u64]>,
    /// Per filter word: how many set bits the words before it hold (the index of its first
    /// set bit's bucket in `buckets`).
    ranks: Box<[u32]>,
    /// The bucket of the `k`-th set bit of the filter is `entries[buckets[k]..buckets[k + 1]]`.
    buckets: Box<[u32]>,
    /// Each bucket's literals, with what the first comparison needs in the entry itself.
    entries: Box<[Entry]>,
    /// Nibble tables for few literals, searched instead of the filter with AVX2.
    teddy: Option<teddy::Teddy>,
    /// Where each needle's windows start ([`SHORT`]: a 6-byte literal's overhang windows).
    bases: Box<[u8]>,
    /// Needles with the same bytes as an earlier one (and compared the same way) have no
    /// entries of their own: they are reported with it. The twins of needle `i` are
    /// `twins[twin_at[i]..twin_at[i + 1]]`.
    twins: Box<[u32]>,
    twin_at: Box<[u32]>,
}

/// The base of a literal whose windows overhang it (`window_keys`).
const SHORT: u8 = u8::MAX;

/// (window width, stride, whether 6-byte literals take overhang windows) for `needles`; None
/// when there are none or one is shorter than 3 bytes.
fn shape_of(needles: &[Needle]) -> Option<(usize, usize, bool)> {
    let min = needles.iter().map(|n| n.bytes.len()).min()?;
    if min < 3 {
        return None;
    }
    // PERF: 6-byte literals, when few, join the stride-4 search with a window that starts a
    // byte before them (rules100's `\[(crit|alert|emerg)\]` no longer needs a pass of its
    // own; see PERF.md "overhang").
    let overhang = min == 6
        && needles
            .iter()
            .filter(|n| n.bytes.len() == 6)
            .map(|n| overhang_keys(&n.bytes, n.ci))
            .sum::<usize>()
            <= MAX_OVERHANG_KEYS;
    let width = min.min(4);
    // PERF: stride 3 would not fit the AVX2 kernel's 4-byte lanes: 2 instead.
    let stride = match (min - width + 1).min(MAX_STRIDE) {
        _ if overhang => MAX_STRIDE,
        3 => 2,
        s => s,
    };
    Some((width, stride, overhang))
}

/// Widest stride: more windows per literal (a fuller filter) for fewer tests per byte.
const MAX_STRIDE: usize = 4;

/// Most filter keys all 6-byte literals may add with windows that start a byte before them
/// (256 a window, times its case variants): each sets that many more bits of the filter.
// PERF: 1,024 (four exact 6-byte literals) left the 6-byte literals of Debian's 2,101 rules
// (nine, two of them user agents of fail2ban's `apache-badbots`) to a search of their own;
// with 4,096 they join the main one: instructions per 16 MB of the generated corpus,
// fail2ban's 194 rules 257-261 → 211-217 M, Debian's 2,101 482 → 452 M (means); on loghub's,
// and for rules100 and logcheck's, unchanged (PERF.md "twenty-third run").
pub(crate) const MAX_OVERHANG_KEYS: usize = 4096;

/// The filter keys a 6-byte literal's window before it takes (see [`MAX_OVERHANG_KEYS`]).
pub(crate) fn overhang_keys(lit: &[u8], ci: bool) -> usize {
    let letters = lit
        .iter()
        .take(3)
        .filter(|b| ci && b.is_ascii_alphabetic())
        .count();
    256 << letters
}

/// Whether [`LitScan::new`] would search `needles` with nibble tables (the CPU has AVX2 and
/// they fit: few, and rare enough in log text).
pub(crate) fn takes_nibble_tables(needles: &[Needle]) -> bool {
    needles.len() <= teddy::MAX_LITERALS
        && has_avx2()
        && needles.iter().all(|n| n.bytes.len() >= teddy::WIDTH)
        && teddy::Teddy::new(needles, teddy::MAX_CHANCE, &|_| false).is_some()
}

/// Whether this CPU has AVX2 (the searches' SIMD kernels need it; false off x86_64).
pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
fn hash(key: u32, shift: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> shift) as usize
}

impl LitScan {
    /// Build over `needles` (each at least 3 bytes long, none containing `\n`). None when
    /// `needles` is empty or one is shorter than 3 bytes.
    pub fn new(needles: Vec<Needle>) -> Option<LitScan> {
        let (width, stride, overhang) = shape_of(&needles)?;
        let base = |i: usize| {
            let n: &Needle = &needles[i];
            match overhang && n.bytes.len() < width + stride - 1 {
                true => SHORT,
                false => rarest_base(&n.bytes, n.ci, width, stride) as u8,
            }
        };
        // PERF: on every core for thousands of literals (Debian's 2,101 rules: 9 M
        // instructions of a cold start's serial part).
        let threads = if needles.len() < 1024 {
            1
        } else {
            crate::par::cores()
        };
        let bases = crate::par::map(needles.len(), threads, 256, base).into();
        Self::build(needles, width, stride, bases)
    }

    /// The same search with each literal's windows placed where `counts` (a sample of the
    /// stream, windows of this search's width) saw them least (see `placement`); None when
    /// this search does not use the filter (nibble tables), the counts are of another width,
    /// or no literal's place changes.
    pub(crate) fn placed_for(&self, counts: &WindowCounts) -> Option<LitScan> {
        if !self.placeable() || counts.width() != self.width {
            return None;
        }
        let bases: Box<[u8]> = self
            .needles
            .iter()
            .zip(&self.bases[..])
            .map(|(n, &b)| match b {
                SHORT => SHORT,
                now => {
                    let now = usize::from(now);
                    stream_base(&n.bytes, n.ci, self.width, self.stride, counts, now) as u8
                }
            })
            .collect();
        if bases == self.bases {
            return None;
        }
        Self::build(self.needles.clone(), self.width, self.stride, bases)
    }

    /// Whether [`LitScan::placed_for`] can place this search's windows (it uses the filter).
    // PERF: 3-byte windows too (a search holding a 3-byte literal: sagan-rules' 2,052 rules,
    // whose `csh`, `tcp`, `usb` … set width 3 and stride 1 for all 2,414 literals; the
    // model's places let 457 k windows a 16 MiB through, the stream's 177 k).
    pub(crate) fn placeable(&self) -> bool {
        !(self.teddy.is_some() && self.avx2)
    }

    /// The width of the windows the filter tests (3 or 4 bytes).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The search over `needles` with windows of `width` bytes every `stride` bytes, literal
    /// `i`'s starting at `bases[i]` ([`SHORT`]: the overhang windows).
    /// None only if a window's offset did not fit an entry (`bases` are bytes: it always does).
    fn build(
        needles: Vec<Needle>,
        width: usize,
        stride: usize,
        bases: Box<[u8]>,
    ) -> Option<LitScan> {
        // PERF: the key keeps case (a literal compared ignoring case is entered under each
        // case variant of its windows): with case masked out, "error" and "kernel" in ordinary
        // text hit the windows of " ERROR [" and "KERNEL" (rules100: 1.86 M bucket visits per
        // 256 MiB, 86 % in vain; see PERF.md "case kept").
        let exact = if width == 4 { u32::MAX } else { 0x00FF_FFFF };
        // PERF: ... unless nearly every literal is compared ignoring case and their case
        // variants outnumber the windows themselves (Debian's 2,101 rules each behind `(?i)`:
        // 113,853 keys for 11,900 windows, the filter of 2^18 bits 16 % full, every sixth
        // window of ordinary text sent to a bucket). The key then ignores case for every
        // literal: one key a window, and a literal compared ignoring case is found in every
        // case either way, so only the few that keep case see more windows pass (they are
        // still compared exactly). Search alone, Debian's rules with a share behind `(?i)`:
        // all 310 → 440 MB/s, 90 % 300-390 → 420-600, 75 % a tie, 50 % and less worse
        // folded (see PERF.md "thirtieth run").
        let windows = plain_windows(&needles, stride, &bases);
        let ci = needles.iter().filter(|n| n.ci).count();
        // PERF: the keys are counted first, and made once, folded or not (Debian's 2,101 rules
        // behind `(?i)` made their 113,853 case variants only to drop them: ~5 ms on the
        // serial path of a cold start, PERF.md "thirty-second run").
        let fold = ci * FOLD_SHARE.1 >= needles.len() * FOLD_SHARE.0
            && count_window_keys(&needles, width, stride, &bases) > FOLD_AT * windows;
        let mask = if fold { exact & CASE_MASK } else { exact };
        let mut keys = window_keys(&needles, width, stride, &bases, fold.then_some(mask));
        let (twins, twin_at) = twins_of(&needles);
        let mut twin = vec![false; needles.len()];
        for &t in &twins[..] {
            if let Some(f) = twin.get_mut(t as usize) {
                *f = true;
            }
        }
        // PERF: a twin's windows are its first's (same bytes, same base): only the first's
        // enter the buckets (Debian's 2,101 rules: "]: connect from " is 12 rules' literal, and
        // the windows of "connect" visited buckets of 22 entries; 26 % fewer entries compared).
        keys.retain(|&(_, n, _)| !twin.get(n as usize).copied().unwrap_or(false));
        // PERF: a filter about 0.2 % full (512 bits a key): at 1.5 % full, chance hits of
        // ordinary text cost as much as the rare windows save. Keys of windows entered under
        // 256 first bytes count too: sized by windows alone, a set of two rules (`NEEDLE \w+`,
        // ` FATAL`) got 4,096 bits 6 % full and ran at a quarter of its speed (criterion
        // matcher/rate).
        let bits = (keys.len() * 512)
            .next_power_of_two()
            .clamp(1 << 12, MAX_FILTER_BITS);
        let shift = 32 - bits.trailing_zeros();
        let (filter, ranks, buckets, pairs) = table(keys, bits, shift);
        let entries = pairs
            .iter()
            .map(|&(_, n, o)| Entry::new(n, needles.get(n as usize)?, o))
            .collect::<Option<_>>()?;
        let avx2 = has_avx2();
        // PERF: few literals are searched with nibble tables (two shuffles per window byte and
        // 16 bytes) instead of a gather per 32 bytes (rules10, search alone: see PERF.md
        // "sixteenth run"); the filter stays for CPUs without AVX2.
        let teddy = if avx2 {
            let twin = |i: usize| twin.get(i).copied().unwrap_or(false);
            teddy::Teddy::new(&needles, teddy::MAX_CHANCE, &twin)
        } else {
            None
        };
        Some(LitScan {
            width,
            stride,
            mask,
            shift,
            avx2,
            filter,
            ranks,
            buckets,
            entries,
            teddy,
            needles,
            bases,
            twins,
            twin_at,
        })
    }

    /// Report needle `n` (found at `p`) and its twins; false when `on` asked to stop.
    #[inline(always)]
    fn report(
        &self,
        p: usize,
        n: u32,
        needle: &Needle,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) -> bool {
        if !on(p, needle) {
            return false;
        }
        let i = n as usize;
        let (Some(&a), Some(&b)) = (self.twin_at.get(i), self.twin_at.get(i + 1)) else {
            return true;
        };
        let twins = self.twins.get(a as usize..b as usize).unwrap_or(&[]);
        twins
            .iter()
            .filter_map(|&t| self.needles.get(t as usize))
            .all(|t| on(p, t))
    }

    /// (literals, window width, stride, filter bits); with nibble tables instead of the
    /// filter, (literals, their window width, 1, 0).
    pub fn shape(&self) -> (usize, usize, usize, usize) {
        match (&self.teddy, self.avx2) {
            (Some(_), true) => (self.needles.len(), teddy::WIDTH, 1, 0),
            _ => (
                self.needles.len(),
                self.width,
                self.stride,
                self.filter.len() * 64,
            ),
        }
    }

    /// Call `on(start, needle)` for every occurrence of a literal in `hay[from..to]`, in the order
    /// of the tested windows, left to right, until `on` returns false. A window lies inside its
    /// literal (where the literal is rarest, not at its start), so occurrences of one line may
    /// come in any order, but all of a line's come before any of a later line's.
    pub fn each(
        &self,
        hay: &[u8],
        from: usize,
        to: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) {
        let to = to.min(hay.len());
        if to < from + self.width {
            return;
        }
        if let (Some(t), true) = (&self.teddy, self.avx2) {
            return self.each_teddy(t, hay, from, to, on);
        }
        let last = to - self.width; // last window start
        match (self.stride, self.avx2) {
            (1, true) => self.each_avx2::<1>(hay, from, to, last, on),
            (2, true) => self.each_avx2::<2>(hay, from, to, last, on),
            (_, true) => self.each_avx2::<4>(hay, from, to, last, on),
            (1, false) => self.each_from::<1>(hay, from, from, to, last, on),
            (2, false) => self.each_from::<2>(hay, from, from, to, last, on),
            (_, false) => self.each_from::<4>(hay, from, from, to, last, on),
        }
    }

    /// [`LitScan::each`] with AVX2: the 32 / S windows of a 32-byte block tested at once, the
    /// scalar path only for the tail. The blocks with a window that passed are found
    /// [`BLOCKS`] at a time, and those windows verified a batch at a time (see [`Batch`]).
    fn each_avx2<const S: usize>(
        &self,
        hay: &[u8],
        from: usize,
        to: usize,
        last: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) {
        let mut batch = Batch::new();
        let mut blocks = Blocks::new();
        let mut q = from;
        loop {
            let next = self.scan_blocks::<S>(hay, q, last, &mut blocks);
            for (&at, &lanes) in blocks.at.iter().zip(&blocks.lanes).take(blocks.len) {
                // Lane 8 j + i is the window at j S + 4 i: reorder to bit = offset in the
                // block, so windows are visited left to right (the matcher relies on it).
                // PERF: a table per byte of lanes, not a step per lane (Debian's 2,101 rules:
                // the search 422 -> 400 M instructions per 64 MiB).
                let mut offsets = (0..4 / S).fold(0u32, |acc, j| {
                    acc | (SPREAD[((lanes >> (8 * j)) & 0xff) as usize] << (j * S))
                });
                // PERF: only the windows whose bit is set are hashed again.
                while offsets != 0 {
                    let w = at + offsets.trailing_zeros() as usize;
                    offsets &= offsets - 1;
                    let Some(c) = hay.get(w..).and_then(|r| r.first_chunk::<4>()) else {
                        continue;
                    };
                    batch.push(w, hash(u32::from_le_bytes(*c) & self.mask, self.shift));
                }
                if batch.full() && !self.verify_batch(&mut batch, hay, from, to, on) {
                    return;
                }
            }
            if blocks.len < BLOCKS {
                // The blocks ended (`next` is where): the windows left one at a time.
                if !self.verify_batch(&mut batch, hay, from, to, on) {
                    return;
                }
                return self.each_from::<S>(hay, from, next, to, last, on);
            }
            q = next;
        }
    }

    /// Verify the windows of `batch` in order and empty it; false when `on` asked to stop.
    /// PERF: first every window's bucket is looked up and its first entry fetched ahead, then
    /// the entries are compared: the lookups of a batch overlap instead of each waiting for
    /// the one before (a window that passes costs a few cache misses, one after the other).
    fn verify_batch(
        &self,
        batch: &mut Batch,
        hay: &[u8],
        from: usize,
        to: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) -> bool {
        let n = std::mem::take(&mut batch.len);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the batch is verified only on the AVX2 path (`each_avx2`), and every CPU
        // with AVX2 has POPCNT.
        unsafe {
            avx2::look_up_batch(self, batch, n)
        };
        #[cfg(not(target_arch = "x86_64"))]
        self.look_up_batch(batch, n);
        for i in 0..n {
            let (a, b) = (batch.hash[i] as usize, batch.end[i] as usize);
            let entries = self.entries.get(a..b).unwrap_or(&[]);
            if !self.verify_entries(hay, from, to, batch.at[i], entries, on) {
                return false;
            }
        }
        true
    }

    /// [`LitScan::each`] with nibble tables: 32 window starts tested at once, each window that
    /// passes verified against the literals of its groups; the first and last windows one at
    /// a time.
    fn each_teddy(
        &self,
        t: &teddy::Teddy,
        hay: &[u8],
        from: usize,
        to: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) {
        if to < from + teddy::WIDTH {
            return;
        }
        let last = to - teddy::WIDTH; // last window start
        let check = |w: usize, on: &mut dyn FnMut(usize, &Needle) -> bool| -> bool {
            let mut groups = t.at(hay, w);
            while groups != 0 {
                let g = groups.trailing_zeros() as usize;
                groups &= groups - 1;
                if !self.verify_entries(hay, from, to, w, t.group(g), on) {
                    return false;
                }
            }
            true
        };
        // Windows ending before byte 32 of `hay`: one at a time (the kernel reads the 32 bytes
        // before its first block).
        let head = (33 - teddy::WIDTH).clamp(from, last + 1);
        for w in from..head {
            if !check(w, on) {
                return;
            }
        }
        let mut q = head;
        let mut blocks = Blocks::new();
        loop {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `self.avx2` (checked by the caller) is set only when the CPU has AVX2;
            // last + WIDTH = to <= hay.len(); q >= head >= 30 once past the head's windows.
            let next = unsafe { avx2::scan_teddy_blocks(&t.lo, &t.hi, hay, q, last, &mut blocks) };
            #[cfg(not(target_arch = "x86_64"))]
            let next = q;
            for (&at, &lanes) in blocks.at.iter().zip(&blocks.lanes).take(blocks.len) {
                let mut lanes = lanes;
                while lanes != 0 {
                    let w = at + lanes.trailing_zeros() as usize;
                    lanes &= lanes - 1;
                    if !check(w, on) {
                        return;
                    }
                }
            }
            if blocks.len == BLOCKS {
                q = next;
                continue;
            }
            // Fewer than 32 windows left: all of them, one at a time.
            let mut lanes = match last.checked_sub(next) {
                Some(n) if n < 32 => u32::MAX >> (31 - n),
                _ => 0,
            };
            while lanes != 0 {
                let w = next + lanes.trailing_zeros() as usize;
                lanes &= lanes - 1;
                if !check(w, on) {
                    return;
                }
            }
            return;
        }
    }

    /// From `q` on, in steps of 32 while a block's last window starts at or before `last`, the
    /// 32-byte blocks with a window (every `S` bytes) whose filter bit is set, into `out` (at
    /// most [`BLOCKS`]; bit `8 j + i` of a block's lanes is the window at `start + j S + 4 i`);
    /// returns where the next block starts. Fewer than [`BLOCKS`]: the blocks ended there.
    #[inline]
    fn scan_blocks<const S: usize>(
        &self,
        hay: &[u8],
        q: usize,
        last: usize,
        out: &mut Blocks,
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `self.avx2` is set only when the CPU has AVX2 (`LitScan::new`), and
            // `self.shift` is 32 - log2 of the filter's bit count.
            unsafe {
                avx2::scan_blocks::<S>(&self.filter, (self.mask, self.shift), hay, q, last, out)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (hay, last);
            out.len = 0;
            q
        }
    }

    /// [`LitScan::each`] with the stride known at compile time (so the four windows of a round
    /// are constant offsets into one 16-byte block).
    #[inline(always)]
    fn each_from<const S: usize>(
        &self,
        hay: &[u8],
        from: usize,
        start: usize,
        to: usize,
        last: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) {
        let (mask, shift) = (self.mask, self.shift);
        let filter = &self.filter[..];
        let hit = |key: u32| -> Option<usize> {
            let h = hash(key & mask, shift);
            ((filter[h / 64] >> (h % 64)) & 1 != 0).then_some(h)
        };
        let word = |b: &[u8; 16], i: usize| -> u32 {
            u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
        };
        let mut q = start;
        // PERF: four windows per round from one 16-byte block, one branch for the four bit
        // tests; the bucket is visited only for windows whose bit is set.
        while q + 3 * S <= last {
            let Some(block) = hay.get(q..).and_then(|r| r.first_chunk::<16>()) else {
                break;
            };
            let keys = [
                word(block, 0),
                word(block, S),
                word(block, 2 * S),
                word(block, 3 * S),
            ];
            let any = keys.iter().fold(0u64, |acc, &k| {
                let h = hash(k & mask, shift);
                acc | (filter[h / 64] >> (h % 64))
            });
            if any & 1 != 0 {
                for (i, &key) in keys.iter().enumerate() {
                    if let Some(h) = hit(key) {
                        if !self.verify(hay, from, to, q + i * S, h, on) {
                            return;
                        }
                    }
                }
            }
            q += 4 * S;
        }
        while q <= last {
            let key = match hay[q..].first_chunk::<4>() {
                Some(c) => u32::from_le_bytes(*c),
                None => key_of(&hay[q..to]),
            };
            if let Some(h) = hit(key) {
                if !self.verify(hay, from, to, q, h, on) {
                    return;
                }
            }
            q += S;
        }
    }

    #[cold]
    #[inline(never)]
    fn verify(
        &self,
        hay: &[u8],
        from: usize,
        to: usize,
        q: usize,
        h: usize,
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) -> bool {
        let (a, b) = self.bucket(h);
        let entries = self.entries.get(a as usize..b as usize).unwrap_or(&[]);
        self.verify_entries(hay, from, to, q, entries, on)
    }

    /// Each of the first `n` windows of `batch`: its hash replaced by its bucket's bounds,
    /// the bucket's first entry fetched ahead.
    #[inline(always)]
    fn look_up_batch(&self, batch: &mut Batch, n: usize) {
        for i in 0..n.min(Batch::CAP) {
            let (a, b) = self.bucket(batch.hash[i] as usize);
            batch.hash[i] = a;
            batch.end[i] = b;
            if let Some(e) = self.entries.get(a as usize) {
                prefetch(e);
            }
        }
    }

    /// The bucket of filter bit `h` (a set bit): its entries are `entries[a..b]`.
    #[inline(always)]
    fn bucket(&self, h: usize) -> (u32, u32) {
        // PERF: the bucket found by the rank of its bit (a table of the set bits, 40 KiB for
        // Debian's 2,101 rules) instead of a start per bit (1 MiB for a 2^18-bit filter: a
        // cache miss per window that passes).
        let word = self.filter[h / 64];
        let k =
            self.ranks[h / 64] as usize + (word & ((1u64 << (h % 64)) - 1)).count_ones() as usize;
        match (self.buckets.get(k), self.buckets.get(k + 1)) {
            (Some(&a), Some(&b)) => (a, b),
            _ => (0, 0),
        }
    }

    /// Report every literal of `entries` (needle, offset of the window at `q` in it) that
    /// occurs in full between `from` and `to`; false when `on` asked to stop.
    #[inline(always)]
    fn verify_entries(
        &self,
        hay: &[u8],
        from: usize,
        to: usize,
        q: usize,
        entries: &[Entry],
        on: &mut dyn FnMut(usize, &Needle) -> bool,
    ) -> bool {
        for e in entries {
            // PERF: the literal's first 8 bytes compared as one word first (case folded for a
            // literal compared ignoring case), from the entry itself, before anything else:
            // most windows that pass belong to another literal of their bucket, and the literal
            // is read only when its first bytes are there (the call to memcmp per entry was a
            // fifth of Debian's 2,101 rules' samples; reading each literal's word from a table
            // of its own, a cache miss per entry; with the bounds checked first and a branch
            // on the entry's case and length, Debian's 2,101 rules: 221 M instructions per
            // 64 MiB here, 209 M after). Exact for a literal of at most 8 bytes kept case.
            // `off` is -1 for a window a byte before its literal: `p` wraps past the end of
            // `hay` when the literal would start before it, and the bounds below refuse it.
            let p = q.wrapping_sub(isize::from(e.off) as usize);
            let word = p
                .checked_add(8)
                .and_then(|end| hay.get(p..end))
                .and_then(|w| w.first_chunk::<8>());
            if let Some(w) = word {
                if (u64::from_le_bytes(*w) | e.fold()) & e.mask() != e.key {
                    continue;
                }
            }
            let Some(needle) = self.needles.get(e.needle as usize) else {
                continue;
            };
            if p < from || p.checked_add(needle.bytes.len()).is_none_or(|end| end > to) {
                continue;
            }
            if word.is_some() && !needle.ci && needle.bytes.len() <= 8 {
                if !self.report(p, e.needle, needle, on) {
                    return false;
                }
                continue;
            }
            // (Within `to`: checked above.)
            let Some(got) = hay.get(p..p + needle.bytes.len()) else {
                continue;
            };
            let same = if needle.ci {
                got.eq_ignore_ascii_case(&needle.bytes)
            } else {
                same_bytes(got, &needle.bytes)
            };
            if same && !self.report(p, e.needle, needle, on) {
                return false;
            }
        }
        true
    }
}

/// Whether `a` and `b` (of the same length) are equal, 8 bytes at a time inline. PERF: a
/// literal whose first 8 bytes matched is compared in full here, most often a few words
/// longer: the call to `memcmp` cost more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let word = |s: &[u8], i: usize| s.get(i..i + 8).and_then(|w| w.first_chunk::<8>()).copied();
    let n = a.len();
    if n < 8 {
        return a == b;
    }
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    // The last 8 bytes (overlapping the words before when the length is not a multiple of 8).
    word(a, n - 8) == word(b, n - 8)
}

/// Eight lane bits spread to every fourth bit: bit `i` of the index is bit `4 i` of the entry
/// (the offsets in a block of the windows of one load).
static SPREAD: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            if b & (1 << i) != 0 {
                t[b] |= 1 << (4 * i);
            }
            i += 1;
        }
        b += 1;
    }
    t
};

/// How many blocks [`LitScan::scan_blocks`] finds at a time.
const BLOCKS: usize = 64;

/// Blocks of 32 bytes with a window that passed the filter: where each starts and which of its
/// windows passed. On the stack: no allocation per search.
struct Blocks {
    len: usize,
    at: [usize; BLOCKS],
    lanes: [u32; BLOCKS],
}

impl Blocks {
    fn new() -> Blocks {
        Blocks {
            len: 0,
            at: [0; BLOCKS],
            lanes: [0; BLOCKS],
        }
    }
}

/// Windows of the filter search that passed, waiting to be verified ([`LitScan::each`]): up to
/// [`Batch::CAP`], a 32-byte block adding at most 32. On the stack: no allocation per search.
pub(super) struct Batch {
    len: usize,
    at: [usize; Batch::CAP],
    /// The window's hash; then, while verifying, its bucket's first entry.
    hash: [u32; Batch::CAP],
    end: [u32; Batch::CAP],
}

impl Batch {
    const CAP: usize = 160;

    fn new() -> Batch {
        Batch {
            len: 0,
            at: [0; Batch::CAP],
            hash: [0; Batch::CAP],
            end: [0; Batch::CAP],
        }
    }

    #[inline(always)]
    fn push(&mut self, at: usize, h: usize) {
        if let (Some(a), Some(x)) = (self.at.get_mut(self.len), self.hash.get_mut(self.len)) {
            *a = at;
            *x = h as u32;
            self.len += 1;
        }
    }

    /// Whether another block might not fit.
    #[inline(always)]
    fn full(&self) -> bool {
        self.len > Self::CAP - 32
    }
}

/// Ask the CPU to fetch `x`'s cache line (a hint: nothing happens where there is none).
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    avx2::prefetch(x);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// One literal of a bucket (or of a group of the nibble tables): which, where the window lies
/// in it, and its first (up to) 8 bytes as a word, for a first comparison that reads nothing
/// but the entry ([`LitScan`]'s `verify_entries`). 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    /// The bytes (bit 5 of each set when compared ignoring case), masked to the literal's.
    key: u64,
    /// The needle's index.
    pub(super) needle: u32,
    /// The window's offset in the literal (-1: a window starting a byte before it).
    pub(super) off: i16,
    /// How far the word of all ones is shifted right to mask the literal's bytes among the
    /// first 8 (0 for 8 bytes or more, 40 for 3).
    shift: u8,
    /// 0x20 when the literal is compared ignoring case, else 0.
    case: u8,
}

// PERF: what the first comparison needs is in the entry as it uses it (the mask's shift, the
// case bit), not derived from the literal's length and a flag at every entry: Debian's 2,101
// rules, about 1.9 entries compared per window that passes: verifying 204 -> 167 M
// instructions per 64 MiB.
impl Entry {
    /// The entry of `needle` (index `n`) for its window at `off`; None when `off` does not fit
    /// in 16 bits (the filter's windows lie within a literal's first 260 bytes; the nibble
    /// tables are not used for a literal of 32 KiB) or the literal is empty (every searched
    /// literal has 3 bytes or more).
    pub(super) fn new(n: u32, needle: &Needle, off: i32) -> Option<Entry> {
        let k = needle.bytes.len().min(8);
        if k == 0 {
            return None;
        }
        let mut b = [0u8; 8];
        b[..k].copy_from_slice(&needle.bytes[..k]);
        let off = i16::try_from(off).ok()?;
        let mut e = Entry {
            key: u64::from_le_bytes(b),
            needle: n,
            off,
            shift: (64 - 8 * k) as u8,
            case: if needle.ci { 0x20 } else { 0 },
        };
        e.key = (e.key | e.fold()) & e.mask();
        Some(e)
    }

    /// Bit 5 of each byte when compared ignoring case (upper and lower case then agree; other
    /// bytes may agree too: the full comparison follows), else 0.
    #[inline(always)]
    fn fold(&self) -> u64 {
        u64::from(self.case) * 0x0101_0101_0101_0101
    }

    /// The literal's bytes among the first 8.
    #[inline(always)]
    fn mask(&self) -> u64 {
        u64::MAX >> (self.shift & 63)
    }
}

impl LitScan {
    /// The literals searched for rule `rule`.
    pub fn literals_of(&self, rule: u32) -> Vec<Vec<u8>> {
        self.needles
            .iter()
            .filter(|n| n.rule == rule)
            .map(|n| n.bytes.to_vec())
            .collect()
    }
}

/// A window key with bit 5 of each byte cleared (ASCII case ignored).
const CASE_MASK: u32 = 0xDFDF_DFDF;

/// The filter's key ignores case when at least this share of the literals (numerator,
/// denominator) are compared ignoring case...
const FOLD_SHARE: (usize, usize) = (4, 5);

/// ... and the case variants of their windows outnumber the windows this many times.
const FOLD_AT: usize = 2;

/// The largest filter, in bits (32 KiB: the first-level data cache).
const MAX_FILTER_BITS: usize = 1 << 18;

/// How many keys [`window_keys`] gives when it ignores case (a key per window; 256 for an
/// overhang window).
fn plain_windows(needles: &[Needle], stride: usize, bases: &[u8]) -> usize {
    let short = bases.iter().filter(|&&b| b == SHORT).count();
    needles.len() * stride + short * 256
}

/// How many keys [`window_keys`] makes without `fold` (a window compared ignoring case is a
/// key per case variant: two per letter).
fn count_window_keys(needles: &[Needle], width: usize, stride: usize, bases: &[u8]) -> usize {
    let variants = |n: &Needle, w: &[u8]| match n.ci {
        true => 1 << w.iter().take(4).filter(|b| b.is_ascii_alphabetic()).count(),
        false => 1,
    };
    needles
        .iter()
        .zip(bases)
        .map(|(n, &base)| match base {
            SHORT => {
                256 * variants(n, &n.bytes[..width - 1])
                    + (0..stride - 1)
                        .map(|off| variants(n, &n.bytes[off..off + width]))
                        .sum::<usize>()
            }
            b => (usize::from(b)..usize::from(b) + stride)
                .map(|off| variants(n, &n.bytes[off..off + width]))
                .sum(),
        })
        .sum()
}

/// Every filter key of every literal: (window key, literal index, offset of the window in the
/// literal; -1 for an overhang window starting a byte before it). With `fold`, one key per
/// window, masked by it (case ignored); else a literal compared ignoring case enters every
/// case variant of its windows.
fn window_keys(
    needles: &[Needle],
    width: usize,
    stride: usize,
    bases: &[u8],
    fold: Option<u32>,
) -> Vec<(u32, u32, i32)> {
    let mut keys: Vec<(u32, u32, i32)> = Vec::with_capacity(needles.len() * stride);
    for ((i, n), &base) in needles.iter().enumerate().zip(bases) {
        let i = i as u32;
        let short = base == SHORT;
        if short {
            // Windows at -1, 0, 1, 2: the first is entered under every byte before the
            // literal. An occurrence at the search's start is tested at 0, 1 or 2 (the
            // tested windows are `from` + 4 k), so none is missed.
            let head = &n.bytes[..width - 1];
            let mut push = |v: &[u8]| {
                for b in 0..=255u8 {
                    let k = key_of(&[b, v[0], v[1], v[2]]);
                    keys.push((fold.map_or(k, |m| k & m), i, -1));
                }
            };
            if n.ci && fold.is_none() {
                each_case_variant(head, &mut push);
            } else {
                push(head);
            }
        }
        let (base, end) = if short {
            (0, stride - 1)
        } else {
            let b = usize::from(base);
            (b, b + stride)
        };
        for off in base..end {
            let w = &n.bytes[off..off + width];
            if let Some(m) = fold {
                keys.push((key_of(w) & m, i, off as i32));
            } else if n.ci {
                each_case_variant(w, &mut |v| keys.push((key_of(v), i, off as i32)));
            } else {
                keys.push((key_of(w), i, off as i32));
            }
        }
    }
    keys
}

/// The filter of `bits` bits, its words' ranks (set bits before each), the bucket starts (one
/// per set bit, and the end) and the sorted, deduplicated (bucket, literal, offset) entries for
/// `keys`.
#[allow(clippy::type_complexity)]
fn table(
    keys: Vec<(u32, u32, i32)>,
    bits: usize,
    shift: u32,
) -> (Box<[u64]>, Box<[u32]>, Box<[u32]>, Vec<(usize, u32, i32)>) {
    let mut pairs: Vec<(usize, u32, i32)> = keys
        .into_iter()
        .map(|(k, n, o)| (hash(k, shift), n, o))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut filter = vec![0u64; bits / 64].into_boxed_slice();
    let mut buckets = Vec::with_capacity(pairs.len() + 1);
    for (i, &(h, _, _)) in pairs.iter().enumerate() {
        if i == 0 || pairs[i - 1].0 != h {
            filter[h / 64] |= 1 << (h % 64);
            buckets.push(i as u32);
        }
    }
    buckets.push(pairs.len() as u32);
    let mut ranks = vec![0u32; bits / 64].into_boxed_slice();
    let mut set = 0u32;
    for (r, w) in ranks.iter_mut().zip(&filter[..]) {
        *r = set;
        set += w.count_ones();
    }
    (filter, ranks, buckets.into_boxed_slice(), pairs)
}

/// The twins of each needle (see [`LitScan`]'s `twins`): (twins, where each needle's start).
fn twins_of(needles: &[Needle]) -> (Box<[u32]>, Box<[u32]>) {
    let mut first: std::collections::HashMap<(&[u8], bool), u32> =
        std::collections::HashMap::with_capacity(needles.len());
    let mut of: Vec<(u32, u32)> = Vec::new(); // (first, twin)
    for (i, n) in needles.iter().enumerate() {
        let f = *first.entry((&n.bytes[..], n.ci)).or_insert(i as u32);
        if f != i as u32 {
            of.push((f, i as u32));
        }
    }
    of.sort_unstable();
    let mut at = Vec::with_capacity(needles.len() + 1);
    let mut k = 0;
    for i in 0..=needles.len() {
        while of.get(k).is_some_and(|&(f, _)| (f as usize) < i) {
            k += 1;
        }
        at.push(k as u32);
    }
    (of.into_iter().map(|(_, t)| t).collect(), at.into())
}

fn key_of(window: &[u8]) -> u32 {
    let mut k = [0u8; 4];
    let n = window.len().min(4);
    k[..n].copy_from_slice(&window[..n]);
    u32::from_le_bytes(k)
}

/// Needles for tests: literal `i` (and whether it is compared ignoring case) for rule `i`.
#[cfg(test)]
pub(super) fn test_needles(lits: &[(&str, bool)]) -> Vec<Needle> {
    lits.iter()
        .enumerate()
        .map(|(i, (s, ci))| Needle {
            bytes: s.as_bytes().into(),
            ci: *ci,
            rule: i as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(lits: &[(&str, bool)]) -> LitScan {
        LitScan::new(test_needles(lits)).unwrap()
    }

    #[test]
    fn rarest_base_leaves_every_window_inside_the_literal() {
        // A base b needs b + stride - 1 + width <= len; a literal that just fits (7 bytes at
        // width 4, stride 4: the overhang case's longer literals) has the one base 0. The
        // fuzz targets' --dev build found the bound computed through an underflow.
        for len in 0..40 {
            let lit: Vec<u8> = (0..len)
                .map(|i| b"zqxj kernel panic: ERROR"[i % 24])
                .collect();
            for (width, stride) in [(3, 1), (3, 2), (4, 1), (4, 2), (4, 4)] {
                let b = rarity::rarest_base(&lit, false, width, stride);
                if len + 1 >= width + stride {
                    assert!(
                        b + stride - 1 + width <= len,
                        "len {len} w {width} s {stride}: {b}"
                    );
                } else {
                    assert_eq!(b, 0);
                }
            }
        }
        // Literals of 6 and 7 bytes together: the overhang search, whose 7-byte literal is
        // at the bound.
        let s = scan(&[("abcdef", false), ("ghijklm", false)]);
        assert_eq!(all(&s, b"xx ghijklm abcdef\n"), vec![(3, 1), (11, 0)]);
    }

    #[test]
    fn the_keys_counted_are_the_keys_made() {
        for lits in [
            &[("abcdef", true), ("ghijklm", false), ("Zq9-xy", true)][..],
            &[
                ("kernel: oversized", true),
                ("1234567", true),
                ("e.g. x", false),
            ],
            &[("abc", true), ("abcd", false), ("a1b2c3d4e5", true)],
            &[("mnopqrst", false)],
        ] {
            let needles = test_needles(lits);
            let Some((width, stride, overhang)) = shape_of(&needles) else {
                panic!("{lits:?} has a shape")
            };
            let bases: Vec<u8> = needles
                .iter()
                .map(|n| match overhang && n.bytes.len() < width + stride - 1 {
                    true => SHORT,
                    false => rarity::rarest_base(&n.bytes, n.ci, width, stride) as u8,
                })
                .collect();
            assert_eq!(
                count_window_keys(&needles, width, stride, &bases),
                window_keys(&needles, width, stride, &bases, None).len(),
                "{lits:?}"
            );
        }
    }

    /// The search over `needles` each way it can run here: the filter without and with AVX2,
    /// and (with AVX2) the nibble tables whatever the chance of their windows.
    fn every_way(needles: &[Needle]) -> Vec<LitScan> {
        let built = LitScan::new(needles.to_vec()).unwrap();
        let twin = |i: usize| built.twins.contains(&(i as u32));
        let forced = teddy::Teddy::new(needles, f64::INFINITY, &twin);
        [(false, None), (true, None), (true, forced)]
            .into_iter()
            .filter(|(avx2, _)| !avx2 || built.avx2)
            .map(|(avx2, teddy)| LitScan {
                avx2,
                teddy,
                ..LitScan::new(needles.to_vec()).unwrap()
            })
            .collect()
    }

    fn all(s: &LitScan, hay: &[u8]) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        s.each(hay, 0, hay.len(), &mut |p, n| {
            v.push((p, n.rule));
            true
        });
        v.sort();
        v
    }

    #[test]
    fn finds_every_occurrence_at_every_alignment() {
        let s = scan(&[("needle", false), ("hay stack", true), ("dle", false)]);
        for pad in 0..9 {
            let hay = format!("{}xneedle HAY STACK needlx hay stack", " ".repeat(pad));
            let got = all(&s, hay.as_bytes());
            let p = pad + 1;
            assert_eq!(
                got,
                vec![(p, 0), (p + 3, 2), (p + 7, 1), (p + 24, 1)],
                "pad {pad}"
            );
        }
    }

    /// Every occurrence, by brute force.
    /// The first occurrence [`LitScan::each`] reports.
    fn first(s: &LitScan, hay: &[u8], from: usize, to: usize) -> Option<usize> {
        let mut found = None;
        s.each(hay, from, to, &mut |at, _| {
            found = Some(at);
            false
        });
        found
    }

    fn naive(lits: &[(Vec<u8>, bool)], hay: &[u8], from: usize, to: usize) -> Vec<(usize, u32)> {
        let mut v = Vec::new();
        for (i, (l, ci)) in lits.iter().enumerate() {
            for p in from..to {
                if let Some(w) = hay.get(p..p + l.len()).filter(|_| p + l.len() <= to) {
                    if w == &l[..] || (*ci && w.eq_ignore_ascii_case(l)) {
                        v.push((p, i as u32));
                    }
                }
            }
        }
        v.sort();
        v
    }

    #[test]
    fn twins_are_reported_with_the_literal_they_repeat_once_each() {
        // Rules 0, 1 and 4 share their literal, rule 2 has it ignoring case: one entry serves
        // 0, 1 and 4, each reported once per occurrence, with AVX2 or without, filter or
        // nibble tables.
        let lits = [
            ("connect from", false),
            ("connect from", false),
            ("connect from", true),
            ("other", false),
            ("connect from", false),
        ];
        let s = scan(&lits);
        assert_eq!(&s.twins[..], &[1, 4]);
        let hay = b"x: connect from a\nCONNECT FROM b other connect from";
        let ways = every_way(&s.needles);
        if let Some(t) = ways.iter().find_map(|w| w.teddy.as_ref()) {
            assert_eq!((0..8).map(|g| t.group(g).len()).sum::<usize>(), 3);
        }
        for (i, t) in ways.iter().enumerate() {
            let got = all(t, hay);
            let want = [
                (3, 0),
                (3, 1),
                (3, 2),
                (3, 4),
                (18, 2),
                (33, 3),
                (39, 0),
                (39, 1),
                (39, 2),
                (39, 4),
            ];
            assert_eq!(got, want, "way {i}");
        }
    }

    #[test]
    fn same_bytes_is_equality() {
        let a: Vec<u8> = (0..40u8).collect();
        for n in 0..40 {
            assert!(same_bytes(&a[..n], &a[..n]));
            assert!(!same_bytes(&a[..n], &a[..n.saturating_sub(1)]) || n == 0);
            for d in 0..n {
                let mut b = a[..n].to_vec();
                b[d] ^= 0x20;
                assert!(!same_bytes(&a[..n], &b), "length {n}, byte {d}");
            }
        }
    }

    /// A haystack where a window passes in most blocks, long enough to fill the blocks found at
    /// a time and the batch of windows many times over: every occurrence found, in the order
    /// of the scan, and a search stopped at the k-th occurrence has reported exactly the first k.
    #[test]
    fn many_passing_blocks_are_batched_without_loss_or_reorder() {
        let words = [
            "connection",
            "refused",
            "session opened",
            "timeout",
            "ERROR",
            "failed password",
            "disk full",
            "kernel",
            "user root",
            "segfault at",
            "denied",
            "invalid user",
        ];
        // The words alone: the nibble tables (with AVX2); with more literals than those take,
        // the filter's search.
        for fillers in [0, 40] {
            let filler: Vec<String> = (0..fillers).map(|i| format!("zq{i}xw")).collect();
            let lits: Vec<(&str, bool)> = words
                .iter()
                .copied()
                .chain(filler.iter().map(String::as_str))
                .enumerate()
                .map(|(i, w)| (w, i % 3 == 0))
                .collect();
            let s = scan(&lits);
            match fillers {
                0 => assert_eq!(s.teddy.is_some(), has_avx2()),
                _ => assert!(s.teddy.is_none() && s.width == 4),
            }
            batched_search_agrees(&s, &lits, &words);
        }
    }

    fn batched_search_agrees(s: &LitScan, lits: &[(&str, bool)], words: &[&str]) {
        let owned: Vec<(Vec<u8>, bool)> = lits
            .iter()
            .map(|(w, ci)| (w.as_bytes().to_vec(), *ci))
            .collect();
        let mut hay = Vec::new();
        let mut x = 0x2545_f491_u32;
        while hay.len() < 96 << 10 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let w = words[x as usize % words.len()];
            match x >> 28 {
                0 => hay.extend_from_slice(w.to_ascii_uppercase().as_bytes()),
                1 => hay.extend_from_slice(&w.as_bytes()[1..]),
                2 => hay.push(b'\n'),
                _ => hay.extend_from_slice(w.as_bytes()),
            }
            hay.extend_from_slice(&b" conn xq "[..(x >> 20) as usize % 10]);
        }
        for (from, to) in [(0, hay.len()), (3, hay.len() - 5), (4097, 70_001)] {
            let mut seq = Vec::new();
            s.each(&hay, from, to, &mut |p, n| {
                seq.push((p, n.rule));
                true
            });
            let mut sorted = seq.clone();
            sorted.sort();
            assert_eq!(sorted, naive(&owned, &hay, from, to));
            assert!(seq.len() > 2_000, "{} occurrences", seq.len());
            for k in [1, 37, 500, seq.len() / 2, seq.len() - 1] {
                let mut got = Vec::new();
                s.each(&hay, from, to, &mut |p, n| {
                    got.push((p, n.rule));
                    got.len() < k
                });
                assert_eq!(got[..], seq[..k]);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]
        #[test]
        fn each_equals_brute_force(
            lits in proptest::collection::vec(
                (proptest::collection::vec(proptest::sample::select(&b"abAB \x00\xff"[..]), 3..12),
                 proptest::bool::ANY),
                1..6),
            parts in proptest::collection::vec(
                (proptest::sample::select(&b"abAB \x00\xff"[..]), 0usize..24, proptest::bool::ANY),
                0..120),
            cut in (0usize..8, 0usize..8),
        ) {
            literals_in_parts_agree(lits, parts, cut)?;
        }
    }

    /// A haystack of `parts`: mostly single bytes; a part whose index is below the literal
    /// count is that literal (upper-cased when the flag says), so occurrences are common. The
    /// search over `lits` (lower-cased where compared ignoring case) must agree with brute force.
    fn literals_in_parts_agree(
        lits: Vec<(Vec<u8>, bool)>,
        parts: Vec<(u8, usize, bool)>,
        cut: (usize, usize),
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let mut hay = Vec::new();
        for (b, i, upper) in parts {
            match lits.get(i) {
                Some((l, _)) if upper => hay.extend(l.to_ascii_uppercase()),
                Some((l, _)) => hay.extend(l),
                None => hay.push(b),
            }
        }
        let lits: Vec<(Vec<u8>, bool)> = lits
            .into_iter()
            .map(|(l, ci)| (if ci { l.to_ascii_lowercase() } else { l }, ci))
            .collect();
        let needles = lits
            .iter()
            .enumerate()
            .map(|(i, (l, ci))| Needle {
                bytes: l.clone().into(),
                ci: *ci,
                rule: i as u32,
            })
            .collect();
        let Some(s) = LitScan::new(needles) else {
            return Ok(());
        };
        agrees_with_naive(&s, &lits, &hay, cut)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, ..Default::default() })]
        /// Up to 32 literals: eight groups of nibble tables share them.
        #[test]
        fn many_literals_equal_brute_force(
            lits in proptest::collection::vec(
                (proptest::collection::vec(proptest::sample::select(&b"abcxyzAZ_ 09\xc3"[..]), 3..8),
                 proptest::bool::weighted(0.3)),
                1..33),
            parts in proptest::collection::vec(
                (proptest::sample::select(&b"abcxyzAZ_ 09\xc3\n"[..]), 0usize..64, proptest::bool::ANY),
                0..300),
            cut in (0usize..20, 0usize..20),
        ) {
            literals_in_parts_agree(lits, parts, cut)?;
        }
    }

    /// `s` (with AVX2 and without) finds in `hay`, cut by `cut` bytes at each end, exactly
    /// the occurrences of `lits` a brute-force search finds.
    fn agrees_with_naive(
        s: &LitScan,
        lits: &[(Vec<u8>, bool)],
        hay: &[u8],
        cut: (usize, usize),
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        let (from, to) = (cut.0.min(hay.len()), hay.len().saturating_sub(cut.1));
        let expected = if from <= to {
            naive(lits, hay, from, to)
        } else {
            vec![]
        };
        let found = |t: &LitScan| {
            let mut got = Vec::new();
            t.each(hay, from, to.max(from), &mut |p, n| {
                got.push((p, n.rule));
                true
            });
            got.sort();
            got.dedup();
            got
        };
        for (i, t) in every_way(&s.needles).iter().enumerate() {
            proptest::prop_assert_eq!(&found(t), &expected, "way {}", i);
        }
        // Placed again by the haystack's own window counts (the filter, as the matchers'
        // placement builds it), with AVX2 and without: the same occurrences.
        let mut counts = WindowCounts::new(s.width);
        counts.add(hay);
        let filter = LitScan {
            teddy: None,
            ..LitScan::new(s.needles.clone()).unwrap()
        };
        if let Some(placed) = filter.placed_for(&counts) {
            for avx2 in [false, true] {
                if avx2 && !s.avx2 {
                    continue;
                }
                let t = LitScan {
                    avx2,
                    teddy: None,
                    ..LitScan::build(
                        placed.needles.clone(),
                        placed.width,
                        placed.stride,
                        placed.bases.clone(),
                    )
                    .unwrap()
                };
                proptest::prop_assert_eq!(&found(&t), &expected, "placed, avx2 {}", avx2);
            }
        }
        Ok(())
    }

    #[test]
    fn windows_move_off_what_the_stream_repeats() {
        // The model's place for this literal, repeated all over a sample as other text: the
        // placed search tests other windows of it, and still finds it everywhere. Alone, its
        // windows are 4 bytes; beside a 3-byte literal, 3 bytes at stride 1.
        let lit = "session opened for user root";
        for (lits, width) in [
            (&[(lit, false)][..], 4),
            (&[(lit, false), ("zsh", false)][..], 3),
        ] {
            let s = LitScan {
                teddy: None,
                ..scan(lits)
            };
            assert_eq!(s.width, width);
            let b = usize::from(s.bases[0]);
            let common = &lit.as_bytes()[b..b + s.width + s.stride - 1];
            let mut sample = Vec::new();
            for i in 0..2000 {
                sample.extend_from_slice(format!("line {i} x").as_bytes());
                sample.extend_from_slice(common);
                sample.extend_from_slice(b" y\n");
            }
            // Counts of the other width place nothing.
            let mut other = WindowCounts::new(7 - s.width);
            other.add(&sample);
            assert!(s.placed_for(&other).is_none());
            let mut counts = WindowCounts::new(s.width);
            counts.add(&sample);
            let placed = s.placed_for(&counts).expect("the common windows are left");
            let moved = usize::from(placed.bases[0]);
            assert_ne!(moved, b);
            // None of its windows lies inside the repeated text any more.
            assert!(
                moved + s.stride + s.width - 1 <= b || moved >= b + s.stride,
                "{moved} {b}"
            );
            // Counts that agree with the model change nothing.
            assert!(placed.placed_for(&counts).is_none());
            let hay = format!("a {lit} b\nc {lit} zsh");
            let mut want = vec![(2, 0), (35, 0)];
            if lits.len() == 2 {
                want.push((64, 1));
            }
            assert_eq!(all(&placed, hay.as_bytes()), want);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]
        /// 6-byte literals at stride 4, with a window before each (see `MAX_OVERHANG_KEYS`).
        #[test]
        fn six_byte_literals_equal_brute_force(
            six in proptest::collection::vec(proptest::sample::select(&b"ab\n1 "[..]), 6),
            longer in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&b"ab1 "[..]), 6..10), 0..3),
            ci in proptest::bool::weighted(0.3),
            parts in proptest::collection::vec(
                (proptest::sample::select(&b"abAB1 \n"[..]), 0usize..8), 0..80),
            cut in (0usize..8, 0usize..8),
        ) {
            let six: Vec<u8> = six.into_iter().map(|b| if b == b'\n' { b'b' } else { b }).collect();
            let mut lits = vec![(six, ci)];
            lits.extend(longer.into_iter().map(|l| (l, false)));
            let mut hay = Vec::new();
            for (b, i) in parts {
                match lits.get(i) {
                    Some((l, _)) => hay.extend(l),
                    None => hay.push(b),
                }
            }
            let needles = lits.iter().enumerate().map(|(i, (l, ci))| Needle {
                bytes: l.clone().into(), ci: *ci, rule: i as u32,
            }).collect();
            let Some(s) = LitScan::new(needles) else { return Ok(()); };
            let keys: usize = lits
                .iter()
                .filter(|(l, _)| l.len() == 6)
                .map(|(l, ci)| overhang_keys(l, *ci))
                .sum();
            if keys <= MAX_OVERHANG_KEYS {
                proptest::prop_assert_eq!(s.stride, 4);
            }
            agrees_with_naive(&s, &lits, &hay, cut)?;
        }
    }

    #[test]
    fn the_first_hit_is_in_the_first_line_holding_a_literal() {
        // Stride 1: the AVX2 lanes of a block are not in position order; `find` must still
        // report the leftmost window first (a bug once reported the second line's literal).
        let hay = b"AAB A1Baaa Ab a b a1\naaaaaaa\x00b a\xffbaaaa\n";
        for avx2 in [false, true] {
            let t = LitScan {
                avx2,
                ..scan(&[("aba", true), ("aab", false), ("b a", true)])
            };
            assert_eq!(first(&t, hay, 0, hay.len()), Some(2), "avx2 {avx2}");
            let mut order = Vec::new();
            t.each(hay, 0, hay.len(), &mut |p, _| {
                order.push(p);
                true
            });
            assert!(order.windows(2).all(|w| w[0] <= w[1]), "{order:?}");
        }
    }

    proptest::proptest! {
        /// The inline newline search agrees with memchr, forwards and backwards, at every
        /// length (the SSE2 steps, the hand-over to memchr past 256 bytes, the tail).
        #[test]
        fn newline_search_equals_memchr(
            parts in proptest::collection::vec((0usize..300, proptest::bool::ANY), 0..6),
        ) {
            let mut hay = Vec::new();
            for (n, nl) in parts {
                hay.extend(std::iter::repeat_n(b'x', n));
                if nl {
                    hay.push(b'\n');
                }
            }
            for cut in 0..hay.len().min(40) {
                let h = &hay[cut..];
                proptest::prop_assert_eq!(find_newline(h), memchr::memchr(b'\n', h));
                proptest::prop_assert_eq!(rfind_newline(h), memchr::memrchr(b'\n', h));
            }
        }

        /// The near literal search finds what memmem finds, or says how far it looked and
        /// memmem finds nothing before that (needles of 1-8 bytes, hits at any distance,
        /// overlapping and cut ones).
        #[test]
        fn near_literal_search_agrees_with_memmem(
            needle in proptest::collection::vec(proptest::sample::select(b"abX".to_vec()), 1..8),
            parts in proptest::collection::vec((0usize..300, 0u8..3), 0..6),
        ) {
            let mut hay = Vec::new();
            for (n, what) in parts {
                hay.extend(std::iter::repeat_n(b'x', n));
                match what {
                    0 => hay.extend_from_slice(&needle),
                    1 => hay.extend_from_slice(&needle[..needle.len() - 1]),
                    _ => hay.extend_from_slice(b"ab"),
                }
            }
            for cut in 0..hay.len().min(24) {
                let h = &hay[cut..];
                let want = memchr::memmem::find(h, &needle);
                // A hit in a 16-byte block it looks at (the first 256 places, both reads in
                // `h`) is found.
                let block = want.map(|w| w / 16 * 16);
                if cfg!(target_arch = "x86_64")
                    && block.is_some_and(|b| b < 256 && b + needle.len() + 15 <= h.len())
                {
                    proptest::prop_assert_eq!(find_literal_near(h, &needle).ok(), want);
                }
                match find_literal_near(h, &needle) {
                    Ok(at) => proptest::prop_assert_eq!(Some(at), want),
                    Err(i) => {
                        proptest::prop_assert!(i <= h.len());
                        proptest::prop_assert!(want.is_none_or(|w| w >= i));
                    }
                }
            }
        }
    }

    #[test]
    fn case_sensitive_literals_stay_exact() {
        let s = scan(&[("ERROR", false), ("warn", true)]);
        assert_eq!(all(&s, b"error ERROR WaRn"), vec![(6, 0), (12, 1)]);
    }

    #[test]
    fn bounds_are_respected() {
        let s = scan(&[("abcdef", false)]);
        let hay = b"abcdefabcdef";
        let mut v = Vec::new();
        s.each(hay, 1, 12, &mut |p, _| {
            v.push(p);
            true
        });
        assert_eq!(v, vec![6]);
        v.clear();
        s.each(hay, 0, 11, &mut |p, _| {
            v.push(p);
            true
        });
        assert_eq!(v, vec![0]);
        assert_eq!(first(&s, hay, 7, 12), None);
    }

    #[test]
    fn short_literals_and_short_haystacks() {
        let s = scan(&[("abc", false)]);
        assert_eq!(all(&s, b"abc"), vec![(0, 0)]);
        assert_eq!(all(&s, b"ab"), vec![]);
        assert_eq!(all(&s, b"xxabc"), vec![(2, 0)]);
        assert!(LitScan::new(vec![]).is_none());
    }

    #[test]
    fn literals_longer_than_an_entry_holds_are_compared_in_full() {
        // An entry keeps at most 32 KiB - 1 of a literal's length: a longer one is still
        // bounded and compared by its whole length (no hit for a haystack that differs only
        // in the last byte, or that ends a byte early).
        let long: String = (0..40_000)
            .map(|i| (b'a' + (i % 23) as u8) as char)
            .collect();
        for ci in [false, true] {
            let s = scan(&[(long.as_str(), ci), ("needle", false)]);
            let mut hay = format!("xx{long}yy").into_bytes();
            assert_eq!(all(&s, &hay), vec![(2, 0)], "ci {ci}");
            let last = 2 + long.len() - 1;
            hay[last] = b'#';
            assert_eq!(all(&s, &hay), vec![], "ci {ci}");
            assert_eq!(all(&s, &hay[..last]), vec![], "ci {ci}");
        }
    }

    #[test]
    fn a_filter_of_literals_ignoring_case_ignores_case_in_its_key() {
        // Nine of ten literals compared ignoring case, their windows full of letters: the key
        // ignores case (one key a window), and every occurrence is still found, none of the
        // one literal that keeps case in another case, none where only bit 5 of a byte that
        // is not a letter differs (`@` and a backquote, `[` and `{`).
        let words = [
            "connection",
            "refused",
            "session",
            "opened",
            "closed",
            "[user@",
            "failure",
            "password",
            "invalid",
        ];
        let mut pairs: Vec<(&str, bool)> = words.iter().map(|&w| (w, true)).collect();
        pairs.push(("Error: kept", false));
        let lits: Vec<(Vec<u8>, bool)> = pairs
            .iter()
            .map(|&(w, ci)| (w.as_bytes().to_vec(), ci))
            .collect();
        let s = LitScan::new(test_needles(&pairs)).unwrap();
        let filter = LitScan {
            teddy: None,
            ..LitScan::new(s.needles.clone()).unwrap()
        };
        assert_eq!(filter.mask, CASE_MASK, "the key ignores case");
        let hay = b"CONNECTION Refused sEsSiOn {user` [USER@ ERROR: KEPT Error: kept \
            opened`closed failurE PassWord invalid [uSeR@ {user@ [user` Error: Kept";
        let r = agrees_with_naive(&s, &lits, hay, (0, 0));
        assert!(r.is_ok(), "{r:?}");
        let found = naive(&lits, hay, 0, hay.len());
        assert_eq!(found.iter().filter(|&&(_, n)| n == 9).count(), 1);
        assert_eq!(found.iter().filter(|&&(_, n)| n == 5).count(), 2);
        // Half of them keeping case: the key keeps case.
        let half: Vec<(&str, bool)> = words
            .iter()
            .enumerate()
            .map(|(i, &w)| (w, i % 2 == 0))
            .collect();
        let t = LitScan {
            teddy: None,
            ..LitScan::new(test_needles(&half)).unwrap()
        };
        assert_eq!(t.mask, u32::MAX);
    }

    #[test]
    fn entries_keep_what_the_first_comparison_needs() {
        let ns = test_needles(&[("abc", false), ("Some Longer Literal", true)]);
        let e = Entry::new(0, &ns[0], 0).unwrap();
        assert_eq!((e.fold(), e.mask()), (0, 0xff_ffff));
        assert_eq!(e.key, u64::from(u32::from_le_bytes(*b"abc\0")));
        let e = Entry::new(1, &ns[1], -1).unwrap();
        assert_eq!((e.off, e.mask()), (-1, u64::MAX));
        assert_eq!(e.fold(), 0x2020_2020_2020_2020);
        assert_eq!(e.key, u64::from_le_bytes(*b"some lon"));
        assert!(Entry::new(1, &ns[1], 40_000).is_none());
    }
}
