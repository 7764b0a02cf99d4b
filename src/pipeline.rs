//! The log path for one input: bytes in, every byte out, alarms raised per matching line.
//!
//! Role: drive a [`LineBuffer`] and a [`Matcher`] over one input stream and report to a
//! [`Sink`]: `pass` gets every byte (whole lines, in order), `alarm` gets each alarm a line
//! raises. It knows nothing of descriptors, polling or the alarm threads, so tests, benches and
//! fuzz targets run exactly the code the reactor runs. Its one thread of its own: a region of
//! at least [`PARALLEL_MIN`] bytes is matched by two threads (scoped, joined before `feed`
//! returns), in ~64 KiB pieces cut at line ends. Reads may also be held
//! ([`Pipeline::hold`]) and matched ahead on another thread ([`Pipeline::match_ahead`]) before
//! they are raised and passed ([`Pipeline::release`]): the reactor's turns of many inputs.
//!
//! Invariants: output is byte-identical to input, whatever the chunking; a region's alarms are
//! raised before it is passed (see [`Sink`]; the output places a `log:` alarm's line after the
//! region that raised it); a line
//! longer than the buffer is passed through in pieces, its first `log-master-bufsize` bytes are
//! matched once (its message), and the rest is never matched; no allocation per line.
//! Rejected alternative: writing line by line — one write per buffer is what makes pass-through
//! cheap.

use std::io;

use crate::linebuf::LineBuffer;
use crate::rules::Matcher;

/// Where the log path delivers. For each region of the stream, the pipeline calls
/// [`region`](Sink::region), then [`alarm`](Sink::alarm) for each alarm its lines raise, then
/// [`pass`](Sink::pass): alarms are raised before their lines are written, so that an output
/// that blocks cannot hold them back.
pub trait Sink {
    /// The next bytes passed will be `region`: the alarms raised until then come from its
    /// lines (each message is a slice of it, except the head of a line that began in an
    /// earlier read, which the pipeline keeps in its own buffer).
    fn region(&mut self, _region: &[u8]) {}
    /// Write log bytes to the output (whole lines, except the pieces of an over-long line and a
    /// last line without `\n`).
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Raise alarm `alarm` (its rank) with `msg` (the line, cut to `log-master-bufsize`).
    fn alarm(&mut self, alarm: u32, msg: &[u8]);
}

/// Counters, published per buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub bytes: u64,
    /// Lines checked exactly (candidates of the fast scan).
    pub confirmed: u64,
    /// Alarm events raised.
    pub alarms: u64,
    /// Bytes handed to the output (the sink accepted them).
    pub passed: u64,
    /// Lines passed (line ends), counted only when asked ([`Pipeline::count_lines`]:
    /// `--metrics`, `--stats`): a count of newlines per buffer, never a loop per line.
    pub lines: u64,
}

impl Stats {
    /// Add another input's counters (published when the input is closed).
    pub(crate) fn add(&mut self, o: &Stats) {
        self.bytes += o.bytes;
        self.confirmed += o.confirmed;
        self.alarms += o.alarms;
        self.lines += o.lines;
        self.passed += o.passed;
    }
}

/// Smallest buffer: big reads are what make the path fast.
pub const DEFAULT_CAPACITY: usize = 1024 * 1024;

/// Regions at least this large are matched on two threads.
pub(crate) const PARALLEL_MIN: usize = 128 * 1024;

/// Size of the pieces a region is cut into for two threads to share (cut at line ends).
const PIECE: usize = 64 * 1024;

/// A region that raised at least one alarm per this many bytes is an alarm storm: the next
/// region is matched by one thread. PERF: raising is serial (the reader queues each alarm, a
/// lane runs it), and a storm's lane needs the second core the helper would take: every line
/// raising a `log:` alarm ran at 0.74 s per 256 MiB with the helper, 0.59 s without; Debian's
/// 2,101 rules (an alarm per 1.5 KiB) and a storm of one line in ten (per 1.3 KiB) gain from
/// it or lose nothing (PERF.md "fourteenth run").
const STORM_BYTES_PER_ALARM: usize = 512;

/// ... and when the alarms' lane would be busy at least half as long as the matcher: about
/// this many nanoseconds a raised `log:` alarm (decide, render, write: the lane's CPU in a
/// storm of every line raising, ~97 ns an alarm). PERF: where matching costs more than the
/// alarms, the helper pays even in a dense storm: the "mixed" bench set on loghub's corpus
/// (an alarm per 444 bytes, matching ~3.4 ns a byte) ran on one thread at the lane's speed
/// (PERF.md "twenty-fifth run").
const STORM_LANE_NANOS_PER_ALARM: f64 = 100.0;

/// A region is matched by two threads only when one would take at least this long by the
/// matcher's recent speed ([`Matching::nanos_per_byte`]). PERF: starting the helper and
/// waiting for it costs tens of µs and the second core, which `cat`, the alarm lane or other
/// inputs' writers may need: with 100 supervised processes (regions of ≤ 320 KiB, rules100)
/// the helper made the run slower (0.70 s vs 0.61 s), and 10 rules over stdin's 1 MiB regions
/// gained nothing from it; Debian's 2,101 rules (about 6 ns a byte) need it at any size
/// (PERF.md "fourteenth run").
const PARALLEL_MIN_NANOS: f64 = 500_000.0;

/// ... and, on fewer than [`HELPER_OWN_CORE`] cores, only when the matcher's recent speed is at
/// least this many nanoseconds a byte. PERF: there a faster matcher leaves the helper only
/// the core that the writer (`cat`) and the reader thread need:
/// rules100 (0.8 ns a byte on one thread; 1.6 counted with the helper) through `cat |` over
/// 1 MiB regions took 5-8 % less CPU without it and as long or less (256 MiB: 0.245 s against
/// 0.255 in a fast period, 0.374 against 0.359 in a slow one), while fail2ban's 194 rules
/// (4.5 ns a byte), logcheck's 1,907, Debian's 2,101 and rules1000 (4.5 to 8 ns) still gain
/// from it (PERF.md "twenty-first run"). It was 2.0 until Debian's 2,101 rules went below it
/// (1.4-1.6 ns a byte after the class windows' sieve) and lost the helper: through `cat |`
/// 0.27-0.28 s per 256 MiB with it against 0.37-0.40 without; fail2ban's 194, logcheck's
/// 1,907, the same rules behind `(?i)` and rules1000 gain 4-14 %, and at 0.5 rules100 (0.8 ns
/// a byte) is slower (0.12 against 0.11 s; PERF.md "fortieth run").
const PARALLEL_MIN_NANOS_PER_BYTE: f64 = 1.0;

/// Cores from which the helper is taken to have one of its own beside the writer and the
/// reader thread, and [`PARALLEL_MIN_NANOS_PER_BYTE`] is not asked (not measured: this
/// project's machines have 2).
const HELPER_OWN_CORE: usize = 4;

/// The hits of one piece of a region, kept until the region is matched (alarms stay in line
/// order). Reused across buffers: no allocation per line.
#[derive(Default)]
struct Deferred {
    /// Each matching line of the piece, in order.
    hits: Vec<DeferredHit>,
    ranks: Vec<u32>,
    /// Lines confirmed in the piece.
    confirmed: usize,
}

/// A matching line found by the helper thread, delivered in line order afterwards.
#[derive(Debug, Clone)]
struct DeferredHit {
    /// The message's place in the region.
    msg: std::ops::Range<usize>,
    /// Its alarm ranks' place in [`Deferred::ranks`].
    ranks: std::ops::Range<usize>,
}

impl Deferred {
    /// Keep a hit: `msg` (in a region starting at address `base`) raises `hits`.
    fn defer(&mut self, base: usize, msg: &[u8], hits: &[u32]) {
        let start = msg.as_ptr() as usize - base;
        let r0 = self.ranks.len();
        self.ranks.extend_from_slice(hits);
        self.hits.push(DeferredHit {
            msg: start..start + msg.len(),
            ranks: r0..self.ranks.len(),
        });
    }

    fn clear(&mut self) {
        self.hits.clear();
        self.ranks.clear();
        self.confirmed = 0;
    }
}

/// When matching is worth a second thread: the matcher's recent speed and whether the last
/// work was an alarm storm. A pipeline keeps one for its regions; the reactor keeps one for
/// the batches of its many inputs (`reactor::batch`).
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    /// A second core exists and there are rules: large work is shared by two threads.
    parallel: bool,
    /// The recent speed below which work is never shared (see
    /// [`PARALLEL_MIN_NANOS_PER_BYTE`]; 0 with [`HELPER_OWN_CORE`] cores or more).
    min_nanos_per_byte: f64,
    /// The last work matched was an alarm storm (see [`STORM_BYTES_PER_ALARM`]).
    storm: bool,
    /// What matching a byte costs one thread, recently (a moving average over work of at
    /// least [`PARALLEL_MIN`] bytes; work shared by two threads counts twice its time).
    nanos_per_byte: f64,
}

impl Pace {
    /// The pace of a matcher of `rules` (none: never shared) before anything is measured.
    pub(crate) fn new(rules: bool) -> Pace {
        Pace {
            parallel: rules && crate::par::cores() > 1,
            min_nanos_per_byte: match crate::par::cores() < HELPER_OWN_CORE {
                true => PARALLEL_MIN_NANOS_PER_BYTE,
                false => 0.0,
            },
            storm: false,
            nanos_per_byte: 0.0,
        }
    }

    /// This pace, sharing work whatever the matcher's speed (no
    /// [`PARALLEL_MIN_NANOS_PER_BYTE`]).
    pub(crate) fn any_speed(mut self) -> Pace {
        self.min_nanos_per_byte = 0.0;
        self
    }

    /// A second core exists and there are rules.
    pub(crate) fn parallel(&self) -> bool {
        self.parallel
    }

    /// Whether matching that took one thread `nanos` for `bytes` (so far) is worth a second
    /// thread for what follows.
    pub(crate) fn worth_sharing(&self, bytes: usize, nanos: f64) -> bool {
        self.parallel
            && !self.storm
            && nanos >= PARALLEL_MIN_NANOS
            && nanos >= bytes as f64 * self.min_nanos_per_byte
    }

    /// Whether large work is shared by two threads now: a second core, no storm, and the
    /// matcher's recent speed at or above [`PARALLEL_MIN_NANOS_PER_BYTE`].
    pub(crate) fn sharing(&self) -> bool {
        self.parallel && !self.storm && self.nanos_per_byte >= self.min_nanos_per_byte
    }

    /// Whether `bytes` about to be matched are worth two threads.
    pub(crate) fn two(&self, bytes: usize) -> bool {
        self.sharing()
            && bytes >= PARALLEL_MIN
            && bytes as f64 * self.nanos_per_byte >= PARALLEL_MIN_NANOS
    }

    /// `bytes` were matched in `nanos` by `threads` threads and raised `raised` alarms.
    pub(crate) fn after(&mut self, bytes: usize, raised: u64, nanos: f64, threads: f64) {
        let raised = usize::try_from(raised).unwrap_or(usize::MAX);
        // Dense, and the lane's work per byte at least half the matcher's (by its recent
        // speed; before any is measured, density alone).
        let lane = raised as f64 * STORM_LANE_NANOS_PER_ALARM;
        self.storm = raised.saturating_mul(STORM_BYTES_PER_ALARM) > bytes
            && 2.0 * lane >= bytes as f64 * self.nanos_per_byte;
        if bytes >= PARALLEL_MIN {
            let sample = nanos * threads / bytes as f64;
            self.nanos_per_byte = match self.nanos_per_byte {
                // The first measure is taken whole: a many inputs' turn may be a tenth of the
                // run (PERF.md "forty-second run").
                0.0 => sample,
                npb => 0.75 * npb + 0.25 * sample,
            };
        }
    }
}

/// The matching half of a pipeline: matchers, caches and scratch.
struct Matching {
    matcher: Matcher,
    /// A second matcher for a second thread on large regions (see [`PARALLEL_MIN`]), made at
    /// the first such region (an input that never has one costs no second cache).
    helper: Option<Matcher>,
    /// The thread that runs `helper`, started with it.
    worker: Option<crate::par::Worker>,
    pace: Pace,
    /// Piece bounds of the region being matched, and each piece's hits.
    bounds: Vec<usize>,
    deferred: Vec<std::sync::Mutex<Deferred>>,
}

/// The log path of one input.
pub struct Pipeline {
    ms: Matching,
    buf: LineBuffer,
    /// Inside a line longer than the buffer whose head was already matched.
    skipping: bool,
    /// Count lines into `stats.lines`.
    count_lines: bool,
    /// Reads are kept unprocessed ([`hold`](Self::hold)) ...
    hold: bool,
    /// ... and some are, until [`release`](Self::release) (or any processing) takes them.
    held: bool,
    /// The hits of the first `ahead_upto` unprocessed bytes (whole lines), matched ahead of
    /// their processing by [`match_ahead`](Self::match_ahead); 0: none. Message places are
    /// offsets from the first unprocessed byte (they stay true when the buffer rolls).
    ahead: Deferred,
    ahead_upto: usize,
    pub stats: Stats,
}

impl Pipeline {
    /// Lines each rule matched so far (index: the rule's place in the configuration), over
    /// both matching threads.
    pub fn rule_hits(&self) -> Vec<u64> {
        let mut hits = vec![0; self.ms.matcher.rule_hits().len()];
        self.each_rule_hit(|r, n| hits[r] += n);
        hits
    }

    /// `f(rule, lines it matched so far)` for each rule that matched, per matching thread
    /// (no allocation: for publishing metrics per buffer).
    pub(crate) fn each_rule_hit(&self, mut f: impl FnMut(usize, u64)) {
        let helper = self.ms.helper.as_ref().map(|h| h.rule_hits());
        for hits in std::iter::once(self.ms.matcher.rule_hits()).chain(helper) {
            for (r, &n) in hits.iter().enumerate() {
                if n != 0 {
                    f(r, n);
                }
            }
        }
    }

    /// Record where confirmation time goes per rule, in both matching threads (`replay`).
    pub fn profile_rules(&mut self) {
        self.ms.matcher.profile();
        if self.ms.pace.parallel {
            let rules = self.ms.matcher.rules();
            self.ms
                .helper
                .get_or_insert_with(|| rules.matcher())
                .profile();
        }
    }

    /// Confirmation time per rule over both matching threads, when
    /// [`profile_rules`](Self::profile_rules) was called.
    pub fn rule_cost(&self) -> Option<crate::rules::RuleCost> {
        let mut cost = self.ms.matcher.rule_cost()?.clone();
        if let Some(h) = self.ms.helper.as_ref().and_then(|h| h.rule_cost()) {
            cost.add(h);
        }
        Some(cost)
    }

    /// Match with `rules` from now on: the line the buffer holds a part of, and every later
    /// one (a reload swaps rules at this line boundary).
    pub fn set_rules(&mut self, rules: &crate::rules::RuleSet) {
        self.set_matcher(rules.matcher());
    }

    /// [`set_rules`](Self::set_rules) with a matcher made by the caller (a sibling sharing
    /// caches with other inputs of the same thread: [`crate::Matcher::sibling`]).
    pub fn set_matcher(&mut self, matcher: crate::Matcher) {
        self.ms.helper = None;
        self.ms.matcher = matcher;
        // Matched by the rules swapped out: matched again.
        self.ahead_upto = 0;
    }

    /// Keep what reads bring unprocessed (only [`commit`](Self::commit); [`feed`](Self::feed)
    /// and [`feed_chunk`](Self::feed_chunk) process at once), until
    /// [`release`](Self::release), unless the buffer fills up with no line end (then its head
    /// is matched and passed as always). The reactor holds the reads of its many inputs to
    /// match them in one batch on two threads (`reactor::batch`).
    pub(crate) fn hold(&mut self, on: bool) {
        self.hold = on;
    }

    /// Whether matching this input's large regions is shared with a second thread now (by
    /// the matcher's recent speed; not during an alarm storm, which one thread matches).
    pub(crate) fn shares_matching(&self) -> bool {
        self.ms.pace.sharing()
    }

    /// Whether a held buffer should be released before it is read again: less than an
    /// eighth of it is left to read into.
    pub(crate) fn held_full(&self) -> bool {
        self.held && self.buf.room() < self.buf.capacity() / 8 + 1
    }

    /// The bytes of the whole lines held, which [`release`](Self::release) processes.
    pub(crate) fn held_lines(&self) -> usize {
        match self.held {
            true => memchr::memrchr(b'\n', self.buf.filled()).map_or(0, |i| i + 1),
            false => 0,
        }
    }

    /// Match the whole lines held now, without raising or passing anything (so another thread
    /// may do it while this one serves other inputs): [`release`](Self::release) raises their
    /// alarms. `helper`: on the helper's matcher (a thread matching beside the one that owns
    /// this pipeline's matcher: see [`crate::Matcher::helper`]).
    pub(crate) fn match_ahead(&mut self, helper: bool) {
        let upto = self.held_lines();
        self.ahead.clear();
        self.ahead_upto = 0;
        if upto == 0 {
            return;
        }
        let filled = self.buf.filled();
        let from = match self.skipping {
            // The tail of an over-long line ends at the first newline: never matched.
            true => memchr::memchr(b'\n', &filled[..upto]).map_or(upto, |i| i + 1),
            false => 0,
        };
        let m = match helper {
            true => {
                let Matching {
                    matcher, helper, ..
                } = &mut self.ms;
                helper.get_or_insert_with(|| matcher.helper())
            }
            false => &mut self.ms.matcher,
        };
        let d = &mut self.ahead;
        let base = filled.as_ptr() as usize;
        if from < upto {
            d.confirmed = m.scan_lines(&filled[from..upto], &mut |msg, hits| {
                d.defer(base, msg, hits);
            });
        }
        self.ahead_upto = upto;
    }

    /// The alarms [`match_ahead`](Self::match_ahead) found (for the batch's storm check).
    pub(crate) fn ahead_alarms(&self) -> u64 {
        self.ahead.ranks.len() as u64
    }

    /// Stop holding: raise and pass the whole lines held (by the hits matched ahead, if any).
    pub(crate) fn release(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        self.hold = false;
        if !self.held {
            return Ok(());
        }
        match self.held_lines() {
            0 => {
                self.held = false;
                Ok(())
            }
            upto => self.process(upto, sink),
        }
    }

    /// The input's offset of the first byte not yet matched: a line start (where rules
    /// swapped now take effect).
    pub fn line_start(&self) -> u64 {
        self.stats.bytes - self.buf.filled().len() as u64
    }

    /// Count lines into `stats.lines` from now on.
    pub fn count_lines(&mut self, on: bool) {
        self.count_lines = on;
    }

    #[inline]
    fn count(&mut self, passed: &[u8]) {
        if self.count_lines {
            self.stats.lines += memchr::memchr_iter(b'\n', passed).count() as u64;
        }
    }
}

impl Pipeline {
    /// A pipeline with a buffer of at least `capacity` bytes (and always more than twice
    /// `log-master-bufsize`, so an over-long line's head is in the buffer when it overflows).
    pub fn new(matcher: Matcher, capacity: usize) -> Pipeline {
        let cap = capacity.max(matcher.rules().bufsize().saturating_mul(2) + 1);
        Pipeline {
            ms: Matching {
                helper: None,
                worker: None,
                pace: Pace::new(!matcher.rules().is_empty()),
                bounds: Vec::new(),
                deferred: Vec::new(),
                matcher,
            },
            buf: LineBuffer::with_capacity(cap),
            skipping: false,
            count_lines: false,
            hold: false,
            held: false,
            ahead: Deferred::default(),
            ahead_upto: 0,
            stats: Stats::default(),
        }
    }

    /// Room to read into (never empty: a full buffer is drained by `commit`).
    pub fn spare(&mut self) -> &mut [u8] {
        self.buf.spare()
    }

    /// The `n` bytes a read just put into [`spare`](Self::spare), before [`commit`](Self::commit).
    pub fn just_read(&self, n: usize) -> &[u8] {
        self.buf.just_read(n)
    }

    /// `n` bytes were read into [`spare`](Self::spare): pass and match every complete line.
    pub fn commit(&mut self, n: usize, sink: &mut dyn Sink) -> io::Result<()> {
        self.commit_now(n, sink, self.hold)
    }

    /// [`commit`](Self::commit), held when `hold` (see [`hold`](Self::hold)).
    fn commit_now(&mut self, n: usize, sink: &mut dyn Sink, hold: bool) -> io::Result<()> {
        // Held bytes may hold line ends: the last one is looked for among them too.
        let old_len = match self.held {
            true => 0,
            false => self.buf.filled().len(),
        };
        self.buf.commit(n);
        self.stats.bytes += n as u64;
        let filled = self.buf.filled();
        let last = memchr::memrchr(b'\n', &filled[old_len..]);
        if hold && (last.is_some() || !self.buf.is_full()) {
            self.held |= !filled.is_empty();
            return Ok(());
        }
        match last {
            Some(i) => {
                let last = old_len + i + 1;
                self.process(last, sink)
            }
            None if self.buf.is_full() => {
                // A line longer than the whole buffer: match its head once, pass it in pieces.
                let len = self.buf.filled().len();
                self.held = false;
                sink.region(self.buf.filled());
                if !self.skipping {
                    self.raise_line(len, sink);
                    self.skipping = true;
                }
                let written = sink.pass(self.buf.filled());
                if written.is_ok() {
                    self.stats.passed += len as u64;
                }
                self.buf.consume(len);
                written
            }
            None => Ok(()),
        }
    }

    /// Whether the input's bytes passed so far end inside a line (an unterminated last line,
    /// or a line longer than the buffer not yet ended).
    pub(crate) fn inside_line(&self) -> bool {
        self.skipping || !self.buf.filled().is_empty()
    }

    /// End of input: the last line (without `\n`) is a line too.
    pub fn finish(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let len = self.buf.filled().len();
        if len == 0 {
            return Ok(());
        }
        self.process(len, sink)
    }

    /// Copy `data` in and process it (for tests, benches and fuzzing; the reactor reads
    /// straight into [`spare`](Self::spare)).
    pub fn feed(&mut self, mut data: &[u8], sink: &mut dyn Sink) -> io::Result<()> {
        while !data.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(data.len());
            spare[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.commit_now(n, sink, false)?;
        }
        Ok(())
    }

    /// Bytes read elsewhere (`chunk`, any boundaries): like [`feed`](Self::feed), but the whole
    /// lines inside the chunk are passed and matched where they are, not copied into the roll
    /// buffer; only the pieces of lines at its two ends are.
    pub fn feed_chunk(&mut self, chunk: &[u8], sink: &mut dyn Sink) -> io::Result<()> {
        let mut rest = chunk;
        if !self.buf.filled().is_empty() || self.skipping {
            // The line the roll buffer holds ends in this chunk (or goes on past it).
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    self.feed(&rest[..=i], sink)?;
                    rest = &rest[i + 1..];
                }
                None => return self.feed(rest, sink),
            }
        }
        // PERF: the chunk's whole lines where they are: no copy (see PERF.md "reader thread").
        if let Some(j) = memchr::memrchr(b'\n', rest) {
            let lines = &rest[..=j];
            self.stats.bytes += lines.len() as u64;
            sink.region(lines);
            let n = self.ms.scan(lines, sink, &mut self.stats.alarms);
            self.stats.confirmed += n as u64;
            sink.pass(lines)?;
            self.stats.passed += lines.len() as u64;
            self.count(lines);
            rest = &rest[j + 1..];
        }
        self.feed(rest, sink)
    }

    /// Pass and match the first `upto` unprocessed bytes (they end at a line end).
    fn process(&mut self, upto: usize, sink: &mut dyn Sink) -> io::Result<()> {
        sink.region(&self.buf.filled()[..upto]);
        self.held = false;
        let mut from = 0;
        let ahead = std::mem::take(&mut self.ahead_upto);
        if ahead > 0 && ahead <= upto {
            // Matched ahead (`match_ahead`): raised in line order, the rest matched below.
            let region = &self.buf.filled()[..ahead];
            for h in &self.ahead.hits {
                for &a in &self.ahead.ranks[h.ranks.clone()] {
                    self.stats.alarms += 1;
                    sink.alarm(a, &region[h.msg.clone()]);
                }
            }
            self.stats.confirmed += self.ahead.confirmed as u64;
            from = ahead;
            self.skipping = false;
        }
        if self.skipping {
            // The tail of an over-long line ends at the first newline: never matched.
            from = memchr::memchr(b'\n', &self.buf.filled()[..upto]).map_or(upto, |i| i + 1);
            self.skipping = false;
        }
        if from < upto {
            let lines = &self.buf.filled()[from..upto];
            let n = self.ms.scan(lines, sink, &mut self.stats.alarms);
            self.stats.confirmed += n as u64;
        }
        let written = sink.pass(&self.buf.filled()[..upto]);
        if written.is_ok() {
            self.stats.passed += upto as u64;
        }
        if self.count_lines {
            self.stats.lines +=
                memchr::memchr_iter(b'\n', &self.buf.filled()[..upto]).count() as u64;
        }
        self.buf.consume(upto);
        written
    }

    fn raise_line(&mut self, len: usize, sink: &mut dyn Sink) {
        let line = &self.buf.filled()[..len];
        let alarms = &mut self.stats.alarms;
        self.ms.matcher.confirm(line, &mut |msg, hits| {
            for &a in hits {
                *alarms += 1;
                sink.alarm(a, msg);
            }
        });
        self.stats.confirmed += 1;
    }
}

impl Matching {
    /// Match whole `lines` and raise their alarms into `sink`, in line order; `alarms` counts
    /// them. Returns the number of lines confirmed.
    fn scan(&mut self, lines: &[u8], sink: &mut dyn Sink, alarms: &mut u64) -> usize {
        let before = *alarms;
        let t = (lines.len() >= PARALLEL_MIN).then(std::time::Instant::now);
        let two = self.pace.two(lines.len());
        let n = self.scan_region(lines, sink, alarms, two);
        let nanos = t.map_or(0.0, |t| t.elapsed().as_nanos() as f64);
        let threads = if two { 2.0 } else { 1.0 };
        self.pace
            .after(lines.len(), *alarms - before, nanos, threads);
        n
    }

    /// [`scan`](Self::scan) of one region, on two threads when `two`.
    fn scan_region(
        &mut self,
        lines: &[u8],
        sink: &mut dyn Sink,
        alarms: &mut u64,
        two: bool,
    ) -> usize {
        let mut deliver = |msg: &[u8], hits: &[u32]| {
            for &a in hits {
                *alarms += 1;
                sink.alarm(a, msg);
            }
        };
        // PERF: a large region is cut at line ends into pieces of ~64 KiB that two threads
        // take in turn, so neither waits long for the other when the scheduler runs `cat`
        // or the alarm thread on one core; each piece's hits wait in `deferred` so alarms
        // keep line order (see PERF.md "pieces").
        if two {
            let helper = match &mut self.helper {
                Some(h) => h,
                none => none.insert(self.matcher.helper()),
            };
            let bounds = &mut self.bounds;
            bounds.clear();
            bounds.push(0);
            let mut at = 0;
            while lines.len() - at > PIECE {
                match memchr::memchr(b'\n', &lines[at + PIECE..]) {
                    Some(i) if at + PIECE + i + 1 < lines.len() => {
                        at += PIECE + i + 1;
                        bounds.push(at);
                    }
                    _ => break,
                }
            }
            bounds.push(lines.len());
            let pieces = bounds.len() - 1;
            if pieces < 2 {
                // One long line: nothing to share, no thread to start.
                return self.matcher.scan_lines(lines, &mut deliver);
            }
            if self.deferred.len() < pieces {
                self.deferred.resize_with(pieces, Default::default);
            }
            let next = std::sync::atomic::AtomicUsize::new(0);
            let (bounds, deferred) = (&self.bounds[..], &self.deferred[..pieces]);
            let work = |m: &mut Matcher| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= pieces {
                        return;
                    }
                    // A poisoned lock only means the other thread panicked, which is
                    // re-raised below.
                    let mut d = deferred[k].lock().unwrap_or_else(|e| e.into_inner());
                    let d = &mut *d;
                    d.clear();
                    let base = lines.as_ptr() as usize;
                    d.confirmed =
                        m.scan_lines(&lines[bounds[k]..bounds[k + 1]], &mut |msg, hits| {
                            d.defer(base, msg, hits);
                        });
                }
            };
            let matcher = &mut self.matcher;
            if self.worker.is_none() {
                self.worker = crate::par::Worker::new().ok();
            }
            match &mut self.worker {
                // PERF: kept off this CPU (Debian's 2,101 rules through `cat |`: idle samples
                // 10.0 -> 6.7 %, PERF.md "thirty-third run"). A panic in the helper is a bug,
                // not input: `beside` raises it here.
                Some(w) => w.beside(|| work(helper), || work(matcher)),
                // A helper that could not be started leaves every piece to this thread.
                None => work(matcher),
            }
            let mut n = 0;
            for d in deferred {
                let d = d.lock().unwrap_or_else(|e| e.into_inner());
                for h in &d.hits {
                    deliver(&lines[h.msg.clone()], &d.ranks[h.ranks.clone()]);
                }
                n += d.confirmed;
            }
            n
        } else {
            self.matcher.scan_lines(lines, &mut deliver)
        }
    }
}

/// A sink that collects everything (tests, fuzzing, benches).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectSink {
    pub out: Vec<u8>,
    pub alarms: Vec<(u32, Vec<u8>)>,
}

impl Sink for CollectSink {
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }
    fn alarm(&mut self, alarm: u32, msg: &[u8]) {
        self.alarms.push((alarm, msg.to_vec()));
    }
}

/// A sink that only counts passed bytes and raised alarms (benches, probes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CountSink {
    pub bytes: u64,
    pub alarms: u64,
}

impl Sink for CountSink {
    fn pass(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.bytes += bytes.len() as u64;
        Ok(())
    }
    fn alarm(&mut self, _alarm: u32, _msg: &[u8]) {
        self.alarms += 1;
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Rule, RuleSet};

    fn rules(bufsize: usize) -> RuleSet {
        let r = |a: u32| Rule {
            alarms: vec![a],
            negate: false,
        };
        RuleSet::new(&[("ERR", r(0)), ("^x+$", r(1))], 2, bufsize).unwrap()
    }

    /// Every region through `cap`, matched as if each byte were slow to match (large regions
    /// on two threads, but in a storm).
    fn run(set: &RuleSet, cap: usize, chunks: &[&[u8]]) -> CollectSink {
        let mut p = Pipeline::new(set.matcher(), cap);
        p.ms.pace.nanos_per_byte = f64::INFINITY;
        let mut s = CollectSink::default();
        for c in chunks {
            p.feed(c, &mut s).unwrap();
        }
        p.finish(&mut s).unwrap();
        s
    }

    #[test]
    fn whole_and_bytewise_agree() {
        let set = rules(8192);
        let input: &[u8] = b"a\nERR 1\nxxx\r\nno\nlast ERR";
        let whole = run(&set, 16, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let bytewise = run(&set, 16, &bytes);
        assert_eq!(whole, bytewise);
        assert_eq!(whole.out, input);
        assert_eq!(
            whole.alarms,
            vec![
                (0, b"ERR 1\n".to_vec()),
                (1, b"xxx\r\n".to_vec()),
                (0, b"last ERR".to_vec())
            ]
        );
    }

    /// Reads held and matched ahead (by either matcher, sometimes with more read after the
    /// matching) give what reads processed at once give, whatever the read sizes.
    #[test]
    fn held_reads_matched_ahead_raise_and_pass_as_reads_processed_at_once() {
        let set = rules(4);
        let mut input = Vec::new();
        for i in 0..300u32 {
            match i % 7 {
                0 => input.extend_from_slice(b"ERR one\n"),
                1 => input.extend_from_slice(b"xxxx\n"),
                // Longer than the buffer: its head matched once, the rest never.
                2 => {
                    input.extend_from_slice(b"ERR ");
                    input.extend(std::iter::repeat_n(b'x', 40 + i as usize % 13));
                    input.extend_from_slice(b" ERR\n");
                }
                3 => input.extend_from_slice(b"\n"),
                _ => input.extend_from_slice(format!("ok {i}\n").as_bytes()),
            }
        }
        input.extend_from_slice(b"ERR without an end");
        let cap = 16;
        let want = run(&set, cap, &[&input]);
        for step in [1, 3, 5, 7, 16] {
            let mut p = Pipeline::new(set.matcher(), cap);
            let mut s = CollectSink::default();
            let mut rest = &input[..];
            let mut turn = 0;
            while !rest.is_empty() {
                p.hold(true);
                let mut reads = 0;
                while !rest.is_empty() && !p.held_full() && reads < 3 {
                    let spare = p.spare();
                    let n = spare.len().min(step).min(rest.len());
                    spare[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    p.commit(n, &mut s).unwrap();
                    reads += 1;
                }
                turn += 1;
                p.match_ahead(turn % 2 == 0);
                if turn % 3 == 0 && !rest.is_empty() && !p.held_full() {
                    // More read after the matching: matched when released.
                    let n = p.spare().len().min(step).min(rest.len());
                    p.spare()[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    p.commit(n, &mut s).unwrap();
                }
                p.release(&mut s).unwrap();
            }
            p.finish(&mut s).unwrap();
            assert_eq!(s.out, input, "step {step}");
            assert_eq!(s.alarms, want.alarms, "step {step}");
            assert_eq!(p.stats.alarms, want.alarms.len() as u64, "step {step}");
        }
    }

    /// Lines matched ahead by rules that a reload swapped out are matched again by the new.
    #[test]
    fn lines_matched_ahead_are_matched_again_after_a_swap() {
        let r = |a: u32| Rule {
            alarms: vec![a],
            negate: false,
        };
        let old = rules(64);
        let new = RuleSet::new(&[("ok", r(0))], 1, 64).unwrap();
        let mut p = Pipeline::new(old.matcher(), 256);
        let mut s = CollectSink::default();
        p.hold(true);
        let text = b"ERR a\nok b\n";
        p.spare()[..text.len()].copy_from_slice(text);
        p.commit(text.len(), &mut s).unwrap();
        assert!(s.out.is_empty(), "held");
        p.match_ahead(false);
        p.set_rules(&new);
        p.release(&mut s).unwrap();
        assert_eq!(s.out, text);
        assert_eq!(s.alarms, vec![(0, b"ok b\n".to_vec())]);
    }

    #[test]
    fn overlong_line_is_matched_once_by_its_head_and_passed_whole() {
        let set = rules(4);
        let mut line = b"ERR ".to_vec();
        line.extend(std::iter::repeat_n(b'y', 100));
        line.extend_from_slice(b" ERR\nERR\n");
        let s = run(&set, 9, &[&line]);
        assert_eq!(s.out, line);
        assert_eq!(
            s.alarms,
            vec![(0, b"ERR ".to_vec()), (0, b"ERR\n".to_vec())]
        );
    }

    #[test]
    fn parallel_pieces_raise_the_same_alarms_in_line_order() {
        let set = rules(8192);
        let mut input = Vec::new();
        let mut i = 0u32;
        while input.len() < 3 * PARALLEL_MIN {
            let line = match i % 7 {
                0 => format!("{i} ERR x\n"),
                3 => "xxxx\n".to_string(),
                _ => format!("line {i} ok\n"),
            };
            input.extend_from_slice(line.as_bytes());
            i += 1;
        }
        let big = run(&set, 4 * PARALLEL_MIN, &[&input]);
        let mut seq = Pipeline::new(set.matcher(), 4 * PARALLEL_MIN);
        seq.ms.pace.parallel = false;
        let mut s = CollectSink::default();
        seq.feed(&input, &mut s).unwrap();
        seq.finish(&mut s).unwrap();
        assert_eq!(big.out, input);
        assert_eq!(big.alarms.len(), s.alarms.len());
        assert!(big.alarms == s.alarms, "parallel and sequential differ");
        let small: Vec<&[u8]> = input.chunks(1000).collect();
        assert!(run(&set, 4096, &small).alarms == s.alarms);
    }

    #[test]
    fn an_alarm_storm_is_matched_by_one_thread_until_it_ends() {
        let set = rules(8192);
        let region = |every: u32| {
            let mut input = Vec::new();
            let mut i = 0u32;
            while input.len() < 2 * PARALLEL_MIN {
                let line = if i.is_multiple_of(every) {
                    format!("{i} ERR raised\n")
                } else {
                    format!("line {i} quiet\n")
                };
                input.extend_from_slice(line.as_bytes());
                i += 1;
            }
            input
        };
        // One alarm per ~30 bytes, then one per ~8 KiB.
        let (storm, calm) = (region(2), region(500));
        let mut p = Pipeline::new(set.matcher(), 4 * PARALLEL_MIN);
        if !p.ms.pace.parallel {
            return; // One core: no region is ever shared.
        }
        // A matcher slow enough to share a region (the recent speed is set before each
        // region: what the test's own regions measure depends on the build), yet quicker
        // than the storm's lane (an alarm per ~30 bytes: ~3 ns a byte of lane work).
        let slow = (PARALLEL_MIN_NANOS / PARALLEL_MIN as f64).max(PARALLEL_MIN_NANOS_PER_BYTE);
        assert!(2.0 * STORM_LANE_NANOS_PER_ALARM / 30.0 > slow);
        let mut s = CollectSink::default();
        let mut feed = |p: &mut Pipeline, r: &[u8], npb: f64| {
            p.ms.pace.nanos_per_byte = npb;
            p.feed(r, &mut s).unwrap();
        };
        feed(&mut p, &calm, slow);
        assert!(
            !p.ms.pace.storm && p.ms.helper.is_some(),
            "a calm region is shared"
        );
        feed(&mut p, &storm, slow);
        assert!(p.ms.pace.storm);
        // The helper is not used now: the storm's alarms come from the reader's matcher.
        p.ms.helper = None;
        feed(&mut p, &storm, slow);
        assert!(
            p.ms.pace.storm && p.ms.helper.is_none(),
            "a storm is not shared"
        );
        feed(&mut p, &calm, slow);
        assert!(!p.ms.pace.storm, "the storm ended");
        feed(&mut p, &calm, slow);
        assert!(p.ms.helper.is_some(), "a calm region is shared again");
        // As dense a storm, but matching costs more than its alarms: shared.
        p.ms.helper = None;
        feed(&mut p, &storm, 100.0);
        assert!(!p.ms.pace.storm, "a storm of costly matching is no storm");
        feed(&mut p, &storm, 100.0);
        assert!(
            p.ms.helper.is_some(),
            "a storm of costly matching is shared"
        );
        p.finish(&mut s).unwrap();
        let mut seq = Pipeline::new(set.matcher(), 4 * PARALLEL_MIN);
        seq.ms.pace.parallel = false;
        let mut want = CollectSink::default();
        for r in [&calm, &storm, &storm, &calm, &calm, &storm, &storm] {
            seq.feed(r, &mut want).unwrap();
        }
        seq.finish(&mut want).unwrap();
        assert!(s.alarms == want.alarms, "alarms differ from one thread's");
        assert_eq!(s.out, want.out);
    }

    #[test]
    fn only_a_region_slow_to_match_is_shared() {
        let set = rules(8192);
        let mut input = Vec::new();
        let mut i = 0u32;
        while input.len() < 6 * PARALLEL_MIN {
            input.extend_from_slice(format!("line {i} quiet\n").as_bytes());
            i += 1;
        }
        let mut p = Pipeline::new(set.matcher(), 8 * PARALLEL_MIN);
        if !p.ms.pace.parallel {
            return; // One core: no region is ever shared.
        }
        let mut s = CollectSink::default();
        // Quick by the recent speed (the region would take under 0.4 ms): one thread.
        p.ms.pace.nanos_per_byte = PARALLEL_MIN_NANOS / (8 * PARALLEL_MIN) as f64;
        p.feed(&input, &mut s).unwrap();
        assert!(p.ms.helper.is_none(), "a quick region is not shared");
        // Long enough by time (over 0.7 ms), but a matcher that keeps up with the pipe alone
        // (on a machine of fewer than HELPER_OWN_CORE cores).
        p.ms.pace.min_nanos_per_byte = PARALLEL_MIN_NANOS_PER_BYTE;
        p.ms.pace.nanos_per_byte = 0.95 * PARALLEL_MIN_NANOS_PER_BYTE;
        assert!(input.len() as f64 * p.ms.pace.nanos_per_byte >= PARALLEL_MIN_NANOS);
        p.feed(&input, &mut s).unwrap();
        assert!(
            p.ms.helper.is_none(),
            "a fast matcher's region is not shared"
        );
        // What the region took is now the recent speed: measured, finite, not the guess.
        assert!(p.ms.pace.nanos_per_byte.is_finite() && p.ms.pace.nanos_per_byte > 0.0);
        // Slow: at least PARALLEL_MIN_NANOS for this region.
        p.ms.pace.nanos_per_byte = PARALLEL_MIN_NANOS / PARALLEL_MIN as f64;
        p.feed(&input, &mut s).unwrap();
        assert!(p.ms.helper.is_some(), "a slow region is shared");
        p.finish(&mut s).unwrap();
        assert_eq!(s.out.len(), 3 * input.len());
    }

    #[test]
    fn one_line_longer_than_the_parallel_minimum_is_matched_once() {
        let set = rules(8192);
        let mut input = b"ERR ".to_vec();
        input.resize(2 * PARALLEL_MIN, b'y');
        input.extend_from_slice(b"\nERR\n");
        let s = run(&set, 4 * PARALLEL_MIN, &[&input]);
        assert_eq!(s.out, input);
        assert_eq!(s.alarms.len(), 2);
        assert_eq!(s.alarms[1], (0, b"ERR\n".to_vec()));
    }

    #[test]
    fn overlong_tail_is_not_matched() {
        let set = rules(4);
        let mut line = vec![b'y'; 50];
        line.extend_from_slice(b"ERR\nok\n");
        let s = run(&set, 9, &[&line]);
        assert_eq!(s.out, line);
        assert!(s.alarms.is_empty());
    }
}
