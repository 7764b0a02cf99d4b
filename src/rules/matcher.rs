//! The hot matcher: candidate lines found over a whole buffer, confirmed rule by rule.
//!
//! Role: a [`Matcher`] holds one thread's caches and scratch for a [`RuleSet`]; it merges the
//! literal search's hits and the DFA part's candidates in line order and gives, per matching
//! line, the alarms it raises.
//! Invariants: no allocation per line (scratch reused); no loop over all rules per line; a
//! line is confirmed cut to `log-master-bufsize` and without its terminator.

#[allow(unused_imports)]
use super::*;
use regex_automata::PatternID;
use std::ops::Range;
use std::sync::Mutex;

/// The bytes of a line without its `\n` (and a `\r` before it).
#[inline]
pub(crate) fn without_terminator(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r', b'\n'] => rest,
        [rest @ .., b'\n'] => rest,
        _ => line,
    }
}

/// Matching state: caches and scratch, reused for every buffer (no allocation per line).
#[derive(Debug)]
pub struct Matcher {
    pub(super) set: RuleSet,
    /// Per-group caches, made at a group's first candidate.
    pub(super) group_caches: Vec<Option<Box<meta::Cache>>>,
    pub(super) group_set: PatternSet,
    /// Groups already run for the current line.
    pub(super) groups_run: Vec<u32>,
    pub(super) scan_cache: Option<meta::Cache>,
    pub(super) exact_cache: Option<meta::Cache>,
    /// The caches of the DFA part's automata in chunks (`DfaPart::chunks`), and their set.
    pub(super) chunk_caches: Vec<Option<Box<meta::Cache>>>,
    pub(super) chunk_set: Option<PatternSet>,
    pub(super) ends_cache: LineEndsCache,
    pub(super) patset: PatternSet,
    /// The literal search's hits over the region being scanned: (literal start, rule), all of
    /// a line's before any of a later line's. Reused: no allocation per line.
    pub(super) lit_hits: Vec<(usize, u32)>,
    /// The short literal search's hits over the region, and the two lists merged (scratch).
    pub(super) short_hits: Vec<(usize, u32)>,
    pub(super) merged_hits: Vec<(usize, u32)>,
    /// Rules whose literals the current line holds, each once (`seen` is their bitset).
    pub(super) named: Vec<u32>,
    pub(super) seen: Vec<u64>,
    pub(super) pos_bits: Vec<u64>,
    pub(super) neg_bits: Vec<u64>,
    pub(super) hits: Vec<u32>,
    /// Lines each rule matched (rule index), counted where a match is confirmed: never per
    /// line, so it costs nothing on lines that match nothing.
    pub(super) rule_hits: Vec<u64>,
    /// Every rule a confirmed line matches is found and counted in `rule_hits` (metrics,
    /// `replay`); otherwise a rule whose alarms the line has already decided is not confirmed.
    pub(super) every_rule: bool,
    /// When set, the rules each confirmed line matched, in the order found (`replay
    /// --report`: its own matcher, never the log path's).
    pub(super) recording: Option<Vec<u32>>,
    /// When set, where confirmation time goes per rule (`replay`: never on the log path).
    pub(super) cost: Option<Box<RuleCost>>,
    /// Whether the DFA part matched the line last confirmed.
    pub(super) dfa_hit: bool,
    /// How the DFA part's class windows fare on this input (see [`WindowWatch`]).
    pub(super) windows: WindowWatch,
    /// The rule set's literal search placed by the stream's window counts (see `placed`),
    /// and the generation it is.
    pub(super) placed: Option<Arc<LitScan>>,
    pub(super) placed_generation: u32,
    /// The automata caches this matcher shares with its siblings ([`Matcher::sibling`]): moved
    /// into the fields above for each call, back after it.
    pub(super) shared: Option<Arc<Mutex<Caches>>>,
    /// The caches of the helper matchers ([`Matcher::helper`]) of this matcher and its
    /// siblings: one set for all of them, as `shared` is for the siblings.
    pub(super) helpers: Option<Arc<Mutex<Caches>>>,
}

/// Where the DFA part's two searches (short literals, class windows) stand in the region being
/// scanned: each one's next hit is kept until the scan passes it, so neither searches the same
/// bytes twice while the other finds the earlier lines.
#[derive(Debug, Default)]
struct DfaCursor {
    pre: NextHit,
    classes: NextHit,
    ends: NextHit,
}

/// One search's next hit in a region: unknown, at a position, or none until the region's end.
#[derive(Debug, Default)]
enum NextHit {
    #[default]
    Unknown,
    At(usize),
    None,
}

impl NextHit {
    /// The search's next hit at or after `pos` (searching with `find` from `pos` when the one
    /// kept is behind it).
    fn next(&mut self, pos: usize, find: impl FnOnce() -> Option<usize>) -> Option<usize> {
        match *self {
            NextHit::At(p) if p >= pos => return Some(p),
            NextHit::None => return None,
            _ => {}
        }
        let found = find();
        *self = found.map_or(NextHit::None, NextHit::At);
        found
    }
}

/// Class windows chosen by a model of log text can be common in a given log (`[a-f0-9]{32}`:
/// eight hex digits, dates and ids): candidate lines that the DFA part does not match are
/// counted, and past [`WindowWatch::SAMPLE`] bytes, more than one such line per
/// [`WindowWatch::BYTES_PER_FALSE`] bytes turns the windows off for this matcher (the automaton
/// over every byte is then cheaper: a false candidate costs a line's confirmation, some 250 ns,
/// the automaton about a nanosecond a byte: `[a-f0-9]{32}` on the loghub corpus, one false line
/// in 271 bytes, ran at 485–597 MB/s with its windows, 801 without).
#[derive(Debug, Clone, Default)]
pub(super) struct WindowWatch {
    bytes: u64,
    false_lines: u64,
    pub(super) off: bool,
}

impl WindowWatch {
    const SAMPLE: u64 = 4 << 20;
    const BYTES_PER_FALSE: u64 = 512;

    #[inline]
    fn account(&mut self, bytes: usize) {
        if self.off {
            return;
        }
        if self.bytes >= Self::SAMPLE && self.false_lines * Self::BYTES_PER_FALSE > self.bytes {
            self.off = true;
        }
        self.bytes += bytes as u64;
    }
}

/// A matcher's automata caches, shared by the matchers of one thread's inputs.
#[derive(Debug, Default)]
pub(super) struct Caches {
    pub(super) group: Vec<Option<Box<meta::Cache>>>,
    scan: Option<meta::Cache>,
    exact: Option<meta::Cache>,
    chunks: Vec<Option<Box<meta::Cache>>>,
    ends: LineEndsCache,
}

/// Time spent confirming candidate lines, per rule (index: the rule's place in the
/// configuration). A step that checks several rules at once (a group's automaton, the DFA
/// part) is shared evenly among the rules it checks.
#[derive(Debug, Clone, Default)]
pub struct RuleCost {
    /// Nanoseconds spent confirming, per rule.
    pub nanos: Vec<u64>,
    /// Candidate lines each rule was checked on.
    pub checks: Vec<u64>,
}

impl RuleCost {
    fn new(rules: usize) -> RuleCost {
        RuleCost {
            nanos: vec![0; rules],
            checks: vec![0; rules],
        }
    }

    /// Add `other`'s figures (another matching thread's).
    pub fn add(&mut self, other: &RuleCost) {
        for (a, b) in self.nanos.iter_mut().zip(&other.nanos) {
            *a += b;
        }
        for (a, b) in self.checks.iter_mut().zip(&other.checks) {
            *a += b;
        }
    }

    /// `nanos` spread evenly over `rules`, each counted as checked once.
    fn share(&mut self, rules: &[u32], nanos: u64) {
        let each = nanos / rules.len().max(1) as u64;
        for &r in rules {
            self.nanos[r as usize] += each;
            self.checks[r as usize] += 1;
        }
    }
}

/// Nanoseconds since `t` (saturating).
#[inline]
fn since(t: Option<std::time::Instant>) -> u64 {
    t.map_or(0, |t| {
        u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
    })
}

impl Matcher {
    /// The rule set this matcher runs.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// How many lines each rule matched so far (index: the rule's place in the
    /// configuration). A line of a `not-log-alarm` rule counts for that rule too.
    pub fn rule_hits(&self) -> &[u64] {
        &self.rule_hits
    }

    /// Record where confirmation time goes, per rule, from now on (see [`RuleCost`]). Costs
    /// two clock reads per confirmation step: for `replay`, not the log path.
    pub fn profile(&mut self) {
        self.cost = Some(Box::new(RuleCost::new(self.set.rules.len())));
        self.every_rule = true;
    }

    /// Find and count every rule each line matches ([`rule_hits`](Self::rule_hits) exact per
    /// rule: `--metrics`' per-rule counts, `replay`), also for this matcher's siblings and
    /// helpers made from now on. Without it a line's rules are confirmed only while they can
    /// still change its alarms: once the line raises an alarm (or a `not-log-alarm` rule
    /// cancelled it), the other rules naming only decided alarms are not confirmed, and
    /// `rule_hits` counts the rules that were.
    pub fn count_every_rule(&mut self) {
        self.every_rule = true;
    }

    /// Whether a line's rules are confirmed only while they can change its alarms (see
    /// [`count_every_rule`](Self::count_every_rule)).
    #[inline]
    fn skips(&self) -> bool {
        !self.every_rule && self.recording.is_none() && !self.set.decides.is_empty()
    }

    /// The figures recorded since [`profile`](Self::profile), if it was called.
    pub fn rule_cost(&self) -> Option<&RuleCost> {
        self.cost.as_deref()
    }

    /// Report every line of `buf` that raises alarms: `on_hit(message, alarm_ranks)`, in line
    /// order. `buf` holds whole lines; only its last line may lack a `\n`. The message is the
    /// line with its terminator, cut to `log-master-bufsize`. Returns the number of lines
    /// confirmed (matched at least one rule, or were checked because they were cut).
    pub fn scan_lines(&mut self, buf: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) -> usize {
        self.with_caches(|m| m.scan_lines_here(buf, on_hit))
    }

    /// A matcher for another input of the same thread: its own scratch and counts, the lazy
    /// DFA caches shared with `self` (made once, not once per input). Never use two siblings at
    /// the same time from two threads: they wait for each other (a matching thread takes
    /// [`RuleSet::matcher`]).
    pub fn sibling(&mut self) -> Matcher {
        let shared = self
            .shared
            .get_or_insert_with(|| Arc::new(Mutex::new(Caches::default())))
            .clone();
        let helpers = self
            .helpers
            .get_or_insert_with(|| Arc::new(Mutex::new(Caches::default())))
            .clone();
        let mut m = self.set.matcher();
        m.shared = Some(shared);
        m.helpers = Some(helpers);
        m.every_rule = self.every_rule;
        m
    }

    /// A matcher for a second thread matching beside this one (a pipeline's helper): its
    /// caches are shared with the helpers of this matcher's siblings, never with the siblings
    /// themselves, which run at the same time. PERF: with 100 tailed files, each input's
    /// helper built its own lazy DFAs (3 % of the run in determinization, and their memory).
    pub fn helper(&mut self) -> Matcher {
        let helpers = self
            .helpers
            .get_or_insert_with(|| Arc::new(Mutex::new(Caches::default())))
            .clone();
        let mut m = self.set.matcher();
        m.shared = Some(helpers);
        m.every_rule = self.every_rule;
        m
    }

    /// Run `f` with the shared caches (if any) moved into this matcher's fields.
    fn with_caches<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let Some(shared) = self.shared.clone() else {
            return f(self);
        };
        let mut caches = shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.swap_caches(&mut caches);
        let out = f(self);
        self.swap_caches(&mut caches);
        out
    }

    fn swap_caches(&mut self, c: &mut Caches) {
        if c.group.len() != self.group_caches.len() {
            // First use: the shared slot takes this rule set's shape.
            c.group = self.group_caches.iter().map(|_| None).collect();
        }
        std::mem::swap(&mut self.group_caches, &mut c.group);
        std::mem::swap(&mut self.scan_cache, &mut c.scan);
        std::mem::swap(&mut self.exact_cache, &mut c.exact);
        std::mem::swap(&mut self.chunk_caches, &mut c.chunks);
        std::mem::swap(&mut self.ends_cache, &mut c.ends);
    }

    fn scan_lines_here(&mut self, buf: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) -> usize {
        if self.set.rules.is_empty() {
            return 0;
        }
        let bufsize = self.set.bufsize;
        if !self.set.end_sensitive || buf.len() <= bufsize {
            return self.scan_range(buf, 0, buf.len(), on_hit);
        }
        // Some rule could match at the cut of a line longer than bufsize, which the scan cannot
        // see (it sees the whole line): find such lines and confirm them one by one.
        // PERF: one `memrchr` per window of `bufsize` bytes, not a step per line: every line that
        // starts in a window and ends at its last `\n` is short; only a window without any `\n`
        // starts a long line.
        let mut confirmed = 0;
        let mut pos = 0; // scanned up to here
        let mut p = 0; // the line starting here is not known to be short yet
        while p + bufsize < buf.len() {
            match memchr::memrchr(b'\n', &buf[p..p + bufsize]) {
                Some(j) => p += j + 1,
                None => {
                    let end = memchr::memchr(b'\n', &buf[p + bufsize..])
                        .map_or(buf.len(), |i| p + bufsize + i + 1);
                    confirmed += self.scan_range(buf, pos, p, on_hit);
                    confirmed += 1;
                    self.confirm_as(&buf[p..end], Names::Search, Some(0), on_hit);
                    pos = end;
                    p = end;
                }
            }
        }
        confirmed + self.scan_range(buf, pos, buf.len(), on_hit)
    }

    /// The candidate line of `hits[i..]` (hits of the region `[pos, to)`, `pos` a line start).
    fn next_lit_line(
        hits: &[(usize, u32)],
        i: usize,
        buf: &[u8],
        pos: usize,
        to: usize,
    ) -> Option<LitLine> {
        let &(at, _) = hits.get(i)?;
        let (start, end) = line_around(buf, pos, at, to);
        let j = hits[i..]
            .iter()
            .position(|&(p, _)| p >= end)
            .map_or(hits.len(), |k| i + k);
        Some(LitLine {
            line: start..end,
            hits: i..j,
        })
    }

    /// The next candidate line at or after `pos` (a line start) that the DFA part finds, and
    /// where in it its automaton may start (see `DfaPart::window_lead`).
    fn next_dfa_line(
        &mut self,
        buf: &[u8],
        pos: usize,
        to: usize,
        cur: &mut DfaCursor,
    ) -> Option<(Range<usize>, usize)> {
        let dfa = self.set.dfa.as_ref()?;
        if let Some(prefixes) = &dfa.prefixes {
            // `pos` is at a line start (the region's, or the end of the line before).
            let line = &buf[pos..to];
            if !line.is_empty() && prefixes.iter().any(|p| line.starts_with(p)) {
                let end = crate::litscan::find_newline(line).map_or(to, |i| pos + i + 1);
                return Some((pos..end, 0));
            }
        }
        let cache = self
            .scan_cache
            .get_or_insert_with(|| dfa.scan.create_cache());
        let classes = dfa.classes.as_ref().filter(|_| !self.windows.off);
        let searched = (dfa.pre.is_some() || classes.is_some() || dfa.ends.is_some())
            && (classes.is_some() || !dfa.needs_classes);
        let at = if searched {
            // The earliest of the searches' next hits (each kept until the scan passes it).
            let earlier = |a: Option<usize>, b: Option<usize>| match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let mut at = None;
            if let Some(pre) = &dfa.pre {
                at = cur.pre.next(pos, || dfa.pre_find(pre, buf, pos, to));
            }
            if let Some(classes) = classes {
                at = earlier(at, cur.classes.next(pos, || classes.find(buf, pos, to)));
            }
            if let Some(ends) = &dfa.ends {
                let (bufsize, cache) = (self.set.bufsize, &mut self.ends_cache);
                let next = cur
                    .ends
                    .next(pos, || ends.find(buf, pos, to, bufsize, cache));
                at = earlier(at, next);
            }
            at?
        } else {
            let input = Input::new(buf).range(pos..to).earliest(true);
            dfa.scan.search_half_with(cache, &input)?.offset()
        };
        let (start, end) = line_around(buf, pos, at, to);
        // `at` is the line's first window when the windows alone find the candidates.
        let from = match dfa.window_lead {
            Some(lead) if searched => at.saturating_sub(start).saturating_sub(lead),
            _ => 0,
        };
        // An empty match after the last `\n` is not a line.
        (start < end).then_some((start..end, from))
    }

    /// The fast path over `buf[from..to]` (both at line starts, or `to` at the end): the
    /// candidate lines of the literal search and of the DFA part, merged in line order.
    fn scan_range(
        &mut self,
        buf: &[u8],
        from: usize,
        to: usize,
        on_hit: &mut dyn FnMut(&[u8], &[u32]),
    ) -> usize {
        self.windows.account(to - from);
        let mut confirmed = 0;
        let mut pos = from;
        // PERF: one literal search over the whole region, its hits kept in order: a candidate
        // line's rules are named by its hits, without searching the line again (rules100:
        // see PERF.md "hits kept"). The DFA part remembers its next candidate line until the
        // literal hits catch up.
        let mut hits = std::mem::take(&mut self.lit_hits);
        hits.clear();
        if let Some(lits) = self.set.lits.as_ref() {
            // PERF: the search placed by the stream's own window counts once it is built (a
            // search of nibble tables is not placed: nothing is counted for it).
            let placement = &self.set.placement;
            if lits.placeable() {
                placement.observe(lits, &buf[from..to]);
                let generation = placement.generation();
                if generation != self.placed_generation {
                    self.placed = placement.current();
                    self.placed_generation = generation;
                }
            }
            let lits = self.placed.as_deref().unwrap_or(lits);
            lits.each(buf, from, to, &mut |p, n| {
                hits.push((p, n.rule));
                true
            });
        }
        if let Some(short) = self.set.short.as_ref() {
            let mut more = std::mem::take(&mut self.short_hits);
            more.clear();
            short.each(buf, from, to, &mut |p, n| {
                more.push((p, n.rule));
                true
            });
            if hits.is_empty() {
                std::mem::swap(&mut hits, &mut more);
            } else if !more.is_empty() {
                let mut merged = std::mem::take(&mut self.merged_hits);
                merge_by_line(&hits, &more, &mut merged);
                std::mem::swap(&mut hits, &mut merged);
                self.merged_hits = merged;
            }
            self.short_hits = more;
        }
        let mut lit = Self::next_lit_line(&hits, 0, buf, pos, to);
        let mut cur = DfaCursor::default();
        let mut dfa = self.next_dfa_line(buf, pos, to, &mut cur);
        loop {
            // The earlier of the two candidate lines (both, when they are the same line).
            let (by_lit, by_dfa) = match (&lit, &dfa) {
                (None, None) => break,
                (Some(l), Some((d, _))) => (l.line.start <= d.start, d.start <= l.line.start),
                (l, _) => (l.is_some(), l.is_none()),
            };
            let (line, names) = match (&lit, &dfa) {
                (Some(l), _) if by_lit => {
                    let start = l.line.start;
                    (l.line.clone(), Names::Hits(&hits[l.hits.clone()], start))
                }
                (_, Some((d, _))) => (d.clone(), Names::None),
                _ => break,
            };
            let dfa_from = match &dfa {
                Some((_, from)) if by_dfa => Some(*from),
                _ => None,
            };
            confirmed += 1;
            pos = line.end;
            self.confirm_as(&buf[line], names, dfa_from, on_hit);
            if by_dfa && !self.dfa_hit {
                self.windows.false_lines += 1;
            }
            if by_lit {
                let next = lit.as_ref().map_or(hits.len(), |l| l.hits.end);
                lit = Self::next_lit_line(&hits, next, buf, pos, to);
            }
            if by_dfa {
                dfa = self.next_dfa_line(buf, pos, to, &mut cur);
            }
        }
        self.lit_hits = hits;
        confirmed
    }

    /// The rules `line` matches (positive and `not-log-alarm` alike), into `out`: one exact
    /// check of the line (for `replay --report`, on a matcher of its own).
    pub fn rules_matching(&mut self, line: &[u8], out: &mut Vec<u32>) {
        let mut rec = std::mem::take(out);
        rec.clear();
        self.recording = Some(rec);
        self.confirm(line, &mut |_, _| {});
        *out = self.recording.take().unwrap_or_default();
    }

    /// Exact check of one line (with terminator) against every rule; reports it if it raises
    /// any alarm.
    pub fn confirm(&mut self, line: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) {
        self.with_caches(|m| m.confirm_as(line, Names::Search, Some(0), on_hit));
    }

    /// Exact check of one line against the rules its literals name (`names`) and the DFA
    /// part's rules (`by_dfa`); reports it if it raises any alarm.
    fn confirm_as(
        &mut self,
        line: &[u8],
        names: Names<'_>,
        dfa_from: Option<usize>,
        on_hit: &mut dyn FnMut(&[u8], &[u32]),
    ) {
        self.dfa_hit = false;
        if line.starts_with(SELF_PREFIX) {
            return;
        }
        let (msg, text) = cut(line, self.set.bufsize);
        clear_bits(&mut self.pos_bits);
        clear_bits(&mut self.neg_bits);
        // A cut line is searched again: a match within the cut text holds one of its rule's
        // literals within the cut text (plain rules need exactly that).
        let names = match names {
            Names::Hits(..) if msg.len() < line.len() => Names::Search,
            other => other,
        };
        let mut any = false;
        if !matches!(names, Names::None) && self.name_rules(text, names) {
            let hits = match names {
                Names::Hits(hits, start) => Some((hits, start)),
                _ => None,
            };
            any |= self.confirm_named(text, hits);
        }
        if let Some(from) = dfa_from {
            // A line that has decided every alarm needs no more rules (not a false candidate
            // of the class windows either: it was not checked).
            let skip = any && self.skips() && settled(&self.set, &self.pos_bits, &self.neg_bits);
            self.dfa_hit = skip || self.confirm_dfa_part(text, from.min(text.len()));
            any |= self.dfa_hit;
        }
        if any {
            self.report(msg, on_hit);
        }
    }

    /// Fill `named` with the rules whose literals `text` holds. False when no rule has
    /// literals.
    #[inline(always)]
    fn name_rules(&mut self, text: &[u8], names: Names<'_>) -> bool {
        if self.set.lits.is_none() && self.set.short.is_none() {
            return false;
        }
        clear_named(&mut self.named, &mut self.seen);
        let (named, seen) = (&mut self.named, &mut self.seen);
        match names {
            Names::Hits(hits, _) => {
                for &(_, rule) in hits {
                    name(named, seen, rule);
                }
            }
            _ => {
                for scan in [&self.set.lits, &self.set.short].into_iter().flatten() {
                    scan.each(text, 0, text.len(), &mut |_, n| {
                        name(named, seen, n.rule);
                        true
                    });
                }
            }
        }
        true
    }

    /// Confirm the `named` rules on `text`: their gates, then plain rules at once, then each
    /// group's automaton once. Marks the alarms of the rules that match; returns whether any
    /// did.
    fn confirm_named(&mut self, text: &[u8], hits: Option<(&[(usize, u32)], usize)>) -> bool {
        let set = &self.set;
        let mut any = false;
        self.groups_run.clear();
        let timed = self.cost.is_some();
        // PERF: a rule that can only set alarm bits the line has already decided is not
        // confirmed (many rules, few alarms: Debian's 2,101 rules raise one).
        let decided = self.skips();
        for &r in &self.named {
            if decided && any {
                if settled(set, &self.pos_bits, &self.neg_bits) {
                    break;
                }
                let (bits, negate) = set.decides[r as usize];
                let done = if negate {
                    self.neg_bits[0]
                } else {
                    self.pos_bits[0] | self.neg_bits[0]
                };
                if bits & !done == 0 {
                    continue;
                }
            }
            let g = set.group_of[r as usize];
            let Some(group) = set.groups.get(g as usize) else {
                continue;
            };
            let t = timed.then(std::time::Instant::now);
            let check = &set.checks[r as usize];
            let gates = check.gates.get_or_init(|| set.gates_made(group, r));
            let held = gates.iter().all(|g| g.holds(text));
            // Decided without the group's automaton: a plain rule (being named is matching),
            // a rule of a group of walks (`chain`), or a gate that does not hold.
            let exact = if check.plain || !held {
                Some(
                    held && check.plain
                        && check.prefix.as_deref().is_none_or(|p| text.starts_with(p)),
                )
            } else {
                group.chain(r).map(|c| c.matches(text))
            };
            if let Some(exact) = exact {
                let ok = exact && set.confirmed(r as usize, text);
                if let Some(c) = &mut self.cost {
                    c.share(&[r], since(t));
                }
                if !ok {
                    continue;
                }
                any = true;
                let marks = (&mut self.pos_bits, &mut self.neg_bits);
                matched(
                    &mut self.rule_hits,
                    &mut self.recording,
                    marks,
                    set,
                    r as usize,
                );
                continue;
            }
            if self.groups_run.contains(&g) {
                continue;
            }
            self.groups_run.push(g);
            let t = timed.then(std::time::Instant::now);
            let Ok(re) = group.re.get_or_init(|| group_regex(group.hirs())) else {
                // Cannot happen for rules of small weight (and large ones were compiled
                // at start-up, where an error stops logalarm); never matches then.
                continue;
            };
            let from = hits.map_or(0, |hits| search_from(set, group, r, &self.seen, hits));
            let from = from.min(text.len());
            let cache =
                self.group_caches[g as usize].get_or_insert_with(|| Box::new(re.create_cache()));
            // PERF: rules alike for the alarms: whether one matches is all the line needs, so
            // the search stops at the first match confirmed instead of running to the line's
            // end for every pattern (kept when every rule is counted).
            let alike = if decided && re.pattern_len() > 1 {
                *group.alike.get_or_init(|| set.alike(&group.rules))
            } else {
                Alike::No
            };
            if alike == Alike::No {
                which(re, cache, text, from, &mut self.group_set);
                let rules = self.group_set.iter();
                let rules = rules.map(|pid| group.rules[pid.as_usize()] as usize);
                let marks = (&mut self.pos_bits, &mut self.neg_bits);
                any |= confirm_each(
                    set,
                    text,
                    rules,
                    &mut self.rule_hits,
                    &mut self.recording,
                    marks,
                );
            } else {
                let marks = (&mut self.pos_bits, &mut self.neg_bits);
                let (hits, rec) = (&mut self.rule_hits, &mut self.recording);
                let mut confirm = confirmer(set, text, hits, rec, marks);
                let one = Automaton {
                    re,
                    ids: &group.rules,
                };
                any |=
                    one.first_confirmed(cache, text, from, None, &mut self.group_set, &mut confirm);
            }
            if let Some(c) = &mut self.cost {
                c.share(&group.rules, since(t));
            }
        }
        any
    }

    /// Confirm the DFA part's rules on `text` (one automaton run gives all of them, or a few
    /// rules of literals only compare their literals), no match starting before `from`.
    fn confirm_dfa_part(&mut self, text: &[u8], from: usize) -> bool {
        let Some(dfa) = self.set.dfa.as_ref() else {
            return false;
        };
        let t = self.cost.is_some().then(std::time::Instant::now);
        let skips = self.skips();
        let (pos, neg) = (&mut self.pos_bits, &mut self.neg_bits);
        let any = match &dfa.literal {
            Some(literal) => {
                let hits = literal.iter().filter(|(_, l)| l.matches(text));
                let rules = hits.map(|(r, _)| *r as usize);
                confirm_each(
                    &self.set,
                    text,
                    rules,
                    &mut self.rule_hits,
                    &mut self.recording,
                    (pos, neg),
                )
            }
            None => {
                // The whole part's cache is made only where the whole part runs (the chunks
                // have caches of their own).
                // PERF: rules alike for the alarms (as a group's): the first match confirmed is
                // all the line needs (the "mixed" bench set's two rules without literals;
                // grok's patterns, which match almost every line, some confirmed by PCRE).
                let alike = if dfa.exact.pattern_len() > 1 && skips {
                    *dfa.alike.get_or_init(|| self.set.alike(&dfa.ids))
                } else {
                    Alike::No
                };
                let set = &self.set;
                let (hits, rec) = (&mut self.rule_hits, &mut self.recording);
                // The chunks are built at the first line that needs them (not on every line
                // of a part alike, whose whole automaton answers).
                let chunk_caches = &mut self.chunk_caches;
                let chunks = move || {
                    let chunks = dfa.chunks(&set.decides)?;
                    if chunk_caches.len() != chunks.len() {
                        *chunk_caches = chunks.iter().map(|_| None).collect();
                    }
                    Some((chunks, chunk_caches))
                };
                let one_set = self
                    .chunk_set
                    .get_or_insert_with(|| PatternSet::new(WHICH_CHUNK));
                if alike != Alike::No {
                    // The whole part's earliest match, and only when its rule's confirmer
                    // refuses it, each chunk's (or the whole part's) matches until one is
                    // confirmed.
                    let mut confirm = confirmer(set, text, hits, rec, (pos, neg));
                    let whole = Automaton {
                        re: &dfa.exact,
                        ids: &dfa.ids,
                    };
                    let cache = self
                        .exact_cache
                        .get_or_insert_with(|| dfa.exact.create_cache());
                    match whole.earliest_confirmed(cache, text, from, None, &mut confirm) {
                        Ok(found) => found,
                        Err(refused) => match chunks() {
                            None => whole.any_confirmed(
                                cache,
                                text,
                                from,
                                &[refused],
                                &mut self.patset,
                                &mut confirm,
                            ),
                            Some((chunks, caches)) => {
                                chunks.iter().zip(caches.iter_mut()).any(|(chunk, cache)| {
                                    let cache = cache
                                        .get_or_insert_with(|| Box::new(chunk.re.create_cache()));
                                    let one = Automaton {
                                        re: &chunk.re,
                                        ids: &chunk.ids,
                                    };
                                    one.first_confirmed(
                                        cache,
                                        text,
                                        from,
                                        Some(refused),
                                        one_set,
                                        &mut confirm,
                                    )
                                })
                            }
                        },
                    }
                } else if let Some((chunks, caches)) = chunks() {
                    let mut any = false;
                    for (chunk, cache) in chunks.iter().zip(caches.iter_mut()) {
                        let cache = cache.get_or_insert_with(|| Box::new(chunk.re.create_cache()));
                        if !skips {
                            // Every rule that matches (`--metrics`, `replay`).
                            which(&chunk.re, cache, text, from, one_set);
                            let rules =
                                one_set.iter().map(|pid| chunk.ids[pid.as_usize()] as usize);
                            any |=
                                confirm_each(set, text, rules, hits, rec, (&mut *pos, &mut *neg));
                            continue;
                        }
                        // A chunk's rules name the same alarms the same way: none is asked
                        // once the line has decided them, and the first confirmed is enough.
                        let (bits, negate) = set.decides[chunk.ids[0] as usize];
                        let done = if negate { neg[0] } else { pos[0] | neg[0] };
                        if bits & !done == 0 {
                            continue;
                        }
                        let one = Automaton {
                            re: &chunk.re,
                            ids: &chunk.ids,
                        };
                        let found = {
                            let marks = (&mut *pos, &mut *neg);
                            let mut confirm = confirmer(set, text, &mut *hits, &mut *rec, marks);
                            one.first_confirmed(cache, text, from, None, one_set, &mut confirm)
                        };
                        any |= found;
                        if found && settled(set, pos, neg) {
                            break;
                        }
                    }
                    any
                } else {
                    let cache = self
                        .exact_cache
                        .get_or_insert_with(|| dfa.exact.create_cache());
                    which(&dfa.exact, cache, text, from, &mut self.patset);
                    let rules = self
                        .patset
                        .iter()
                        .map(|pid| dfa.ids[pid.as_usize()] as usize);
                    confirm_each(set, text, rules, hits, rec, (pos, neg))
                }
            }
        };
        if let Some(c) = &mut self.cost {
            c.share(&dfa.ids, since(t));
        }
        any
    }

    /// Report `msg` with the alarms marked: positive names minus negative names, in rank
    /// order.
    fn report(&mut self, msg: &[u8], on_hit: &mut dyn FnMut(&[u8], &[u32])) {
        self.hits.clear();
        for (w, (p, n)) in self.pos_bits.iter().zip(&self.neg_bits).enumerate() {
            let mut bits = p & !n;
            while bits != 0 {
                let b = bits.trailing_zeros();
                self.hits.push(w as u32 * 64 + b);
                bits &= bits - 1;
            }
        }
        if !self.hits.is_empty() {
            on_hit(msg, &self.hits);
        }
    }
}

/// Whether the line being confirmed has decided every alarm a rule names (with at most 64
/// alarms): each is cancelled by a `not-log-alarm` rule, or raised and named by none.
#[inline]
fn settled(set: &RuleSet, pos: &[u64], neg: &[u64]) -> bool {
    let (Some(&p), Some(&n)) = (pos.first(), neg.first()) else {
        return false;
    };
    set.ruled & !((p & set.unnegated) | n) == 0
}

/// The patterns of `re` that match `text`, into `set`.
#[inline]
/// The patterns of `re` that match `text` with a match starting at `from` or later (the
/// text before `from` is still there for look-around), into `set`.
fn which(
    re: &meta::Regex,
    cache: &mut meta::Cache,
    text: &[u8],
    from: usize,
    set: &mut PatternSet,
) {
    set.clear();
    let input = Input::new(text).range(from..);
    if re.pattern_len() == 1 {
        // PERF: one pattern (most groups): stop at its first match instead of running the
        // overlapping search to the end of the line (the "mixed" bench set, where a third of
        // the lines match: see PERF.md tenth run).
        if re.search_half_with(cache, &input.earliest(true)).is_some() {
            set.insert(PatternID::ZERO);
        }
        return;
    }
    re.which_overlapping_matches_with(cache, &input, set);
}

/// One automaton and the rule of each of its patterns, whose rules are alike for the alarms
/// (`Alike`): the first rule confirmed on a line decides it.
struct Automaton<'a> {
    re: &'a meta::Regex,
    ids: &'a [u32],
}

impl Automaton<'_> {
    /// The rule of the automaton's earliest match on `text`, confirmed by `confirm` (which
    /// confirms, counts and marks one rule): `Ok(true)` when it is, `Ok(false)` when nothing
    /// matches, `Err(rule)` when its confirmer refuses it (or it is `refused`, not tried
    /// again). PERF: for rules without confirmers this is the answer; the search stops at the
    /// first match.
    fn earliest_confirmed(
        &self,
        cache: &mut meta::Cache,
        text: &[u8],
        from: usize,
        refused: Option<u32>,
        confirm: &mut dyn FnMut(u32) -> bool,
    ) -> Result<bool, u32> {
        let input = Input::new(text).range(from..).earliest(true);
        let Some(m) = self.re.search_half_with(cache, &input) else {
            return Ok(false);
        };
        let rule = self.ids[m.pattern().as_usize()];
        if Some(rule) != refused && confirm(rule) {
            Ok(true)
        } else {
            Err(rule)
        }
    }

    /// Whether a rule of the automaton matches `text` and is confirmed (marked by `confirm`):
    /// the earliest match's rule, and only when its confirmer refuses it, every other match's
    /// in pattern order until one is confirmed. `refused`: a rule already refused on this line.
    fn first_confirmed(
        &self,
        cache: &mut meta::Cache,
        text: &[u8],
        from: usize,
        refused: Option<u32>,
        patset: &mut PatternSet,
        confirm: &mut dyn FnMut(u32) -> bool,
    ) -> bool {
        match self.earliest_confirmed(cache, text, from, refused, confirm) {
            Ok(found) => found,
            Err(also) => {
                let refused = [also, refused.unwrap_or(also)];
                self.any_confirmed(cache, text, from, &refused, patset, confirm)
            }
        }
    }

    /// Every rule the automaton finds in `text` but those `refused`, in pattern order, until
    /// `confirm` confirms one (after a confirmer refused the earliest match). Returns whether
    /// one was.
    fn any_confirmed(
        &self,
        cache: &mut meta::Cache,
        text: &[u8],
        from: usize,
        refused: &[u32],
        patset: &mut PatternSet,
        confirm: &mut dyn FnMut(u32) -> bool,
    ) -> bool {
        if self.re.pattern_len() == 1 {
            // Its one rule is the one refused (this follows `earliest_confirmed`).
            return false;
        }
        which(self.re, cache, text, from, patset);
        patset
            .iter()
            .map(|pid| self.ids[pid.as_usize()])
            .any(|rule| !refused.contains(&rule) && confirm(rule))
    }
}

/// A candidate line of the literal search.
#[derive(Debug, Clone)]
pub(super) struct LitLine {
    /// Where the line is in the buffer (with its terminator).
    pub(super) line: Range<usize>,
    /// Its hits in the region's hit list.
    pub(super) hits: Range<usize>,
}

/// How a candidate line's rules are named.
#[derive(Clone, Copy)]
pub(super) enum Names<'h> {
    /// Not a literal candidate (only the DFA part's rules run).
    None,
    /// By the literal search's hits in the line (literal start, rule), and where the line
    /// starts (the hits are places in the region).
    Hits(&'h [(usize, u32)], usize),
    /// By searching the line (cut to `log-master-bufsize`) again.
    Search,
}

/// The message of a line (cut to `bufsize`) and the text its rules see (the message without
/// its terminator when the line was not cut).
#[inline]
pub(super) fn cut(line: &[u8], bufsize: usize) -> (&[u8], &[u8]) {
    let msg = &line[..line.len().min(bufsize)];
    if msg.len() == line.len() {
        (msg, without_terminator(msg))
    } else {
        (msg, msg)
    }
}

/// Clear an alarm bitset. PERF: one word (up to 64 alarms) without a call to memset, per
/// candidate line (3 % of a storm's instructions were those calls).
#[inline]
fn clear_bits(bits: &mut [u64]) {
    match bits {
        [w] => *w = 0,
        all => all.fill(0),
    }
}

/// Where in the line `group`'s automaton may start, rule `first` of it named: no match of a
/// named rule of it starts before (each rule's [`gate::lead`] before the first of its
/// literals' `hits`: (place in the region, rule), and where the line starts), 0 when some
/// named rule's match may start anywhere. PERF: nothing but a look at `first`'s lead where it
/// has none (Debian's rules anchored at `^`).
fn search_from(
    set: &RuleSet,
    group: &Group,
    first: u32,
    seen: &[u64],
    (hits, start): (&[(usize, u32)], usize),
) -> usize {
    if set.lead_of(group, first).is_none() {
        return 0;
    }
    let mut from = usize::MAX;
    for &r in &group.rules {
        let (w, b) = seen_bit(r);
        if seen.get(w).is_none_or(|&s| s & b == 0) {
            continue;
        }
        let Some(lead) = set.lead_of(group, r) else {
            return 0;
        };
        for &(p, _) in hits.iter().filter(|h| h.1 == r) {
            from = from.min(p.saturating_sub(start).saturating_sub(lead));
        }
    }
    if from == usize::MAX {
        0
    } else {
        from
    }
}

/// Rule `rule`'s word and bit in the named rules' bitset.
#[inline(always)]
fn seen_bit(rule: u32) -> (usize, u64) {
    (rule as usize / 64, 1u64 << (rule % 64))
}

/// Add a rule to the named ones, once (`seen` is their bitset).
#[inline]
pub(super) fn name(named: &mut Vec<u32>, seen: &mut [u64], rule: u32) {
    let (w, b) = seen_bit(rule);
    if seen[w] & b == 0 {
        seen[w] |= b;
        named.push(rule);
    }
}

/// Forget the named rules.
#[inline]
pub(super) fn clear_named(named: &mut Vec<u32>, seen: &mut [u64]) {
    for r in named.drain(..) {
        let (w, b) = seen_bit(r);
        seen[w] &= !b;
    }
}

/// Each of `rules` that `text` matches when its confirmer agrees: counted, recorded and marked
/// ([`matched`]). Returns whether any did.
fn confirm_each(
    set: &RuleSet,
    text: &[u8],
    rules: impl Iterator<Item = usize>,
    rule_hits: &mut [u64],
    recording: &mut Option<Vec<u32>>,
    (pos, neg): (&mut Vec<u64>, &mut Vec<u64>),
) -> bool {
    let mut any = false;
    for r in rules {
        if set.confirmed(r, text) {
            any = true;
            matched(rule_hits, recording, (&mut *pos, &mut *neg), set, r);
        }
    }
    any
}

/// [`confirm_each`] of one rule at a time, for [`Automaton`]'s searches.
fn confirmer<'a>(
    set: &'a RuleSet,
    text: &'a [u8],
    rule_hits: &'a mut [u64],
    recording: &'a mut Option<Vec<u32>>,
    (pos, neg): (&'a mut Vec<u64>, &'a mut Vec<u64>),
) -> impl FnMut(u32) -> bool + 'a {
    move |r| {
        let marks = (&mut *pos, &mut *neg);
        let rule = std::iter::once(r as usize);
        confirm_each(set, text, rule, &mut *rule_hits, &mut *recording, marks)
    }
}

/// Rule `r` of `set` matched the line being confirmed: count it, record it (`replay --report`)
/// and set the alarm bits it names in `marks` (positive, negative).
#[inline]
fn matched(
    rule_hits: &mut [u64],
    recording: &mut Option<Vec<u32>>,
    (pos, neg): (&mut Vec<u64>, &mut Vec<u64>),
    set: &RuleSet,
    r: usize,
) {
    rule_hits[r] += 1;
    if let Some(v) = recording {
        v.push(r as u32);
    }
    mark(pos, neg, &set.rules[r]);
}

/// Set the alarm bits a matching rule names.
#[inline]
pub(super) fn mark(pos: &mut [u64], neg: &mut [u64], rule: &Rule) {
    let bits = if rule.negate { neg } else { pos };
    for &a in &rule.alarms {
        bits[a as usize / 64] |= 1 << (a % 64);
    }
}

/// Two lists of literal hits, each with all of a line's hits before any of a later line's,
/// merged into `out` by position: the result keeps that order (a hit of a later line is past
/// every hit of an earlier one, so it never goes first).
fn merge_by_line(a: &[(usize, u32)], b: &[(usize, u32)], out: &mut Vec<(usize, u32)>) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        if x.0 <= y.0 {
            out.push(*x);
            i += 1;
        } else {
            out.push(*y);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// The line of `buf[pos..to]` (`pos` a line start) holding position `at`.
#[inline]
pub(super) fn line_around(buf: &[u8], pos: usize, at: usize, to: usize) -> (usize, usize) {
    let start = crate::litscan::rfind_newline(&buf[pos..at]).map_or(pos, |i| pos + i + 1);
    let end = crate::litscan::find_newline(&buf[at..to]).map_or(to, |i| at + i + 1);
    (start, end)
}
