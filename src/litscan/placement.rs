//! Where a literal's filter windows go when the stream itself says which windows are common.
//!
//! Role: [`WindowCounts`] counts the windows of a sample of the stream (every position, of the
//! search's width: 4 bytes, or 3 when a literal that short is searched; hashed into a table of
//! [`COUNT_SLOTS`] counters); [`stream_base`] then places a literal's
//! `stride` windows where the sample has them least, the rarity model breaking ties and
//! standing in for windows the sample lacks. `LitScan::placed_for` builds the same search with
//! those places.
//! Invariants: only placement depends on the counts (every window of every literal is still in
//! the filter), so a re-placed search finds exactly what the first one found; counting
//! allocates once per sample, never per line.
//! Why: the rarity model is a first-order Markov estimate of log text; a given log repeats whole
//! words the model cannot see (Debian's 2,101 rules over the loghub corpus: "nect", "auth",
//! "sshd" windows sent 1.3 M of 1.68 M bucket visits per 64 MB in vain; PERF.md
//! "twenty-second run").

use super::key_of;
use super::rarity::{over_variants, window_chance, BaseCosts};

/// Counters in the table: a collision adds another window's count, about one per
/// `sample / COUNT_SLOTS` bytes on average, far below the counts that matter (a window that
/// costs time is seen hundreds of times per MiB).
const COUNT_BITS: u32 = 18;
const COUNT_SLOTS: usize = 1 << COUNT_BITS;

/// Counts of the windows (of one width) seen in a sample of the stream.
#[derive(Debug)]
pub(crate) struct WindowCounts {
    table: Box<[u16]>,
    bytes: u64,
    /// The windows' width in bytes (3 or 4: a search's).
    width: usize,
}

#[inline(always)]
fn slot(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> (32 - COUNT_BITS)) as usize
}

impl WindowCounts {
    /// Counts of windows of `width` bytes (clamped to 3..=4, the widths a search has).
    pub(crate) fn new(width: usize) -> WindowCounts {
        WindowCounts {
            table: vec![0; COUNT_SLOTS].into_boxed_slice(),
            bytes: 0,
            width: width.clamp(3, 4),
        }
    }

    /// The windows' width.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// Count every window that starts in `hay` and ends in it.
    pub(crate) fn add(&mut self, hay: &[u8]) {
        let table = &mut self.table[..];
        for w in hay.windows(self.width) {
            let s = &mut table[slot(key_of(w))];
            *s = s.saturating_add(1);
        }
        self.bytes += hay.len() as u64;
    }

    /// Bytes counted so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How often `w` (a window of [`WindowCounts::width`] bytes; every case variant when `ci`)
    /// was seen.
    fn count(&self, w: &[u8], ci: bool) -> u64 {
        over_variants(w, ci, |v| u64::from(self.table[slot(key_of(v))]))
    }
}

/// How much rarer in the sample a literal's windows must be elsewhere for it to move: samples
/// that differ only by chance then move nothing (`placed`'s test). Debian's rules, the placed
/// search alone (`litspeed`, three interleaved runs): any gain moving, 960-1,000 and
/// 1,260-1,300 MB/s on the two 64 MB corpora; 1.25: 962-989 and 1,232-1,247; 2: 913-956 and
/// 1,186-1,219.
const MOVE: f64 = 1.25;

/// Where in `lit` its `stride` windows of `width` bytes (the counts' width) start so that the sample saw them
/// least, given that they start at `now`: per window its count plus the model's expected count
/// over the sample (so windows the sample never saw are told apart by the model, and a
/// collision's few counts weigh no more than the model's estimate). A literal moves only to
/// windows seen [`MOVE`] times less often than those at `now`: samples that differ by chance
/// do not move it back and forth (each move builds the search again).
pub(crate) fn stream_base(
    lit: &[u8],
    ci: bool,
    width: usize,
    stride: usize,
    counts: &WindowCounts,
    now: usize,
) -> usize {
    let sample = counts.bytes as f64;
    let costs = BaseCosts::new(lit, width, stride, |w| {
        counts.count(w, ci) as f64 + window_chance(w, ci) * sample
    });
    let best = costs.cheapest();
    if costs.at(best) * MOVE < costs.at(now) {
        best
    } else {
        now
    }
}
