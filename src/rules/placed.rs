//! The literal search placed again by the stream's own window counts.
//!
//! Role: a [`Placement`] belongs to a rule set and is shared by all its matchers. The first
//! [`SAMPLE`] bytes the matchers scan are counted (`litscan::WindowCounts`), then the literal
//! search is built again with each literal's windows where the sample saw them least, and the
//! matchers switch to it at their next region. Every [`EVERY`] bytes after that, another
//! sample is counted and the search placed again if a literal's place changes (a log's
//! content drifts: a boot, a new service, an attack).
//! Invariants: a placed search holds the same literals, in the same order, as the rule set's
//! own (only the windows tested differ), so it finds the same occurrences and names the same
//! rules; the log path never waits for it (a matcher that finds the counts busy does not
//! count, and counting and building take a few milliseconds once per [`EVERY`] bytes).

use crate::litscan::{LitScan, WindowCounts};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes counted before the search is placed again.
pub(super) const SAMPLE: u64 = 1 << 20;
/// Bytes scanned between the end of one placement and the start of the next sample.
pub(super) const EVERY: u64 = 256 << 20;

/// See the module's documentation.
#[derive(Debug)]
pub(crate) struct Placement {
    /// [`EVERY`] (smaller in tests).
    every: u64,
    /// Bytes the matchers have scanned, and where the next sample starts.
    scanned: AtomicU64,
    next_sample: AtomicU64,
    /// Bumped at each new placed search (0: none yet).
    generation: AtomicU32,
    /// The sample being counted (held while counting and placing).
    counts: Mutex<Option<WindowCounts>>,
    /// The placed search (held only to swap or clone it: a matcher taking it never waits for
    /// a count).
    current: Mutex<Option<Arc<LitScan>>>,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            every: EVERY,
            scanned: Default::default(),
            next_sample: Default::default(),
            generation: Default::default(),
            counts: Default::default(),
            current: Default::default(),
        }
    }
}

impl Placement {
    /// Account a region a matcher is about to scan: counts it while a sample is being taken,
    /// and places `lits` again when the sample is complete.
    #[inline]
    pub(super) fn observe(&self, lits: &LitScan, region: &[u8]) {
        let len = region.len() as u64;
        let at = self.scanned.fetch_add(len, Relaxed);
        if at + len <= self.next_sample.load(Relaxed) {
            return;
        }
        self.sample(lits, region, at + len);
    }

    #[cold]
    #[inline(never)]
    fn sample(&self, lits: &LitScan, region: &[u8], end: u64) {
        // Another matcher counting or placing: this region is not counted (no waiting).
        let Ok(mut slot) = self.counts.try_lock() else {
            return;
        };
        if end <= self.next_sample.load(Relaxed) {
            return;
        }
        let counts = slot.get_or_insert_with(|| WindowCounts::new(lits.width()));
        let want = SAMPLE.saturating_sub(counts.bytes()) as usize;
        counts.add(&region[..region.len().min(want)]);
        if counts.bytes() < SAMPLE {
            return;
        }
        let Some(counts) = slot.take() else {
            return;
        };
        // Placed from the search in use, so that a sample that agrees with it builds nothing.
        let now = self.current();
        if let Some(placed) = now.as_deref().unwrap_or(lits).placed_for(&counts) {
            *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(placed));
            self.generation.fetch_add(1, Relaxed);
        }
        self.next_sample.store(end + self.every, Relaxed);
    }

    /// The generation of the placed search (0: none yet).
    #[inline]
    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
    }

    /// The placed search (None: the rule set's own still serves).
    pub(super) fn current(&self) -> Option<Arc<LitScan>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::litscan::Needle;

    /// Lines of `n` bytes at least, each holding `words` (a log that repeats them).
    fn text(words: &str, n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 0;
        while v.len() < n {
            v.extend_from_slice(format!("{i} {words} x\n").as_bytes());
            i += 1;
        }
        v
    }

    #[test]
    fn placed_after_each_sample_only_when_the_stream_moves_a_literal() {
        // 80 literals (too many for nibble tables), each "sessionNN opened for user root".
        let needles: Vec<Needle> = (0..80)
            .map(|i| Needle {
                bytes: format!("session{i:02} opened for user root")
                    .into_bytes()
                    .into(),
                ci: false,
                rule: i,
            })
            .collect();
        let Some(lits) = LitScan::new(needles) else {
            panic!("literals of 30 bytes make a search");
        };
        assert!(lits.placeable());
        let p = Placement {
            every: 2 * SAMPLE,
            ..Placement::default()
        };
        let step = 256 << 10;
        let feed = |t: &[u8]| t.chunks(step).for_each(|c| p.observe(&lits, c));
        // The first MiB repeats "opened for": placed once.
        let first = text("opened for", SAMPLE as usize);
        feed(&first);
        assert_eq!(p.generation(), 1);
        let one = p.current();
        assert!(one.is_some());
        // Between samples nothing is counted; the next sample, like the first, moves nothing.
        feed(&text("opened for", 3 * SAMPLE as usize));
        assert_eq!(p.generation(), 1);
        // A sample where the literals' other words are common places them again.
        feed(&text("for user root", 3 * SAMPLE as usize));
        assert_eq!(p.generation(), 2);
        let (Some(one), Some(two)) = (one, p.current()) else {
            panic!("a placed search each time");
        };
        assert!(!Arc::ptr_eq(&one, &two));
        // Both find every literal where the search built from the rules finds it.
        let hay = b"a session07 opened for user root b\nsession79 opened for user root";
        let all = |s: &LitScan| {
            let mut v = Vec::new();
            s.each(hay, 0, hay.len(), &mut |at, n| {
                v.push((at, n.rule));
                true
            });
            v
        };
        assert_eq!(all(&one), all(&lits));
        assert_eq!(all(&two), all(&lits));
        assert_eq!(all(&lits).len(), 2);
    }
}
