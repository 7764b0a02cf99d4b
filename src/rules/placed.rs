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
#[derive(Debug, Default)]
pub(crate) struct Placement {
    /// Bytes the matchers have scanned, and where the next sample starts.
    scanned: AtomicU64,
    next_sample: AtomicU64,
    /// Bumped at each new placed search (0: none yet).
    generation: AtomicU32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    counts: Option<WindowCounts>,
    current: Option<Arc<LitScan>>,
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
        let Ok(mut st) = self.state.try_lock() else {
            return;
        };
        if end <= self.next_sample.load(Relaxed) {
            return;
        }
        let counts = st.counts.get_or_insert_with(WindowCounts::default);
        let want = SAMPLE.saturating_sub(counts.bytes()) as usize;
        counts.add(&region[..region.len().min(want)]);
        if counts.bytes() < SAMPLE {
            return;
        }
        let placed = match (st.counts.take(), &st.current) {
            (Some(c), Some(now)) => now.placed_for(&c),
            (Some(c), None) => lits.placed_for(&c),
            (None, _) => None,
        };
        if let Some(placed) = placed {
            st.current = Some(Arc::new(placed));
            self.generation.fetch_add(1, Relaxed);
        }
        self.next_sample.store(end + EVERY, Relaxed);
    }

    /// The generation of the placed search (0: none yet).
    #[inline]
    pub(super) fn generation(&self) -> u32 {
        self.generation.load(Relaxed)
    }

    /// The placed search (None: the rule set's own still serves).
    pub(super) fn current(&self) -> Option<Arc<LitScan>> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
    }
}
