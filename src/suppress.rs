//! What an alarm sends, and when: message templates with the raising rule's captures,
//! thresholds, and anti-flood per key.
//!
//! Role: one [`Suppress`] per alarm instance decides, for each raised line, whether the alarm
//! fires and with which message. The live lanes call it with the clock, `replay` with the log's
//! own time: one decision for both. Without `alarm-template`, `alarm-key` and
//! `alarm-threshold` the decision is uWSGI's anti-flood ([`AntiFlood`]), unchanged.
//! Invariants: captures are computed only for lines that raise an alarm that uses them, on the
//! alarm's lane thread (never on the log path); per-key state is bounded (`alarm-keys-max`,
//! two generations: a key unused for two generations is forgotten, and counted).

use crate::cluster::Verdict;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::dispatch::AntiFlood;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    /// `{1}`: a numbered group (`{0}`: the whole match).
    Group(usize),
    /// `{host}`: a named group.
    Named(String),
    /// `{line}`: the line (without its terminator).
    Line,
    /// `{alarm}`: the alarm's name.
    Alarm,
    /// `{count}`: matches counted toward this firing (the threshold's window; 1 without one).
    Count,
    /// `{first}`, `{last}`: when the first and the last of them happened.
    First,
    Last,
}

/// How a captured value is written where a template lands (the template's own text is kept
/// as written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Escape {
    #[default]
    /// As is (a message; JSON is escaped by the encoder later).
    None,
    /// Percent-encoded: every byte but `A-Z a-z 0-9 - . _ ~` (a URL).
    Url,
    /// Control characters (CR, LF...) become spaces (a mail header).
    Header,
    /// Only `A-Z a-z 0-9 . _ % + - @` kept, others dropped (a mail address).
    Address,
    /// Inside a JSON string: `"`, `\\` and control characters escaped (`alarm-template-json`).
    Json,
}

impl Escape {
    fn write(self, v: &[u8], out: &mut Vec<u8>) {
        match self {
            Escape::None => out.extend_from_slice(v),
            Escape::Url => {
                for &b in v {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        out.push(b);
                    } else {
                        out.extend_from_slice(format!("%{b:02X}").as_bytes());
                    }
                }
            }
            Escape::Header => {
                out.extend(
                    v.iter()
                        .map(|&b| if b < 0x20 || b == 0x7f { b' ' } else { b }),
                )
            }
            Escape::Json => {
                for &b in v {
                    match b {
                        b'"' => out.extend_from_slice(b"\\\""),
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b if b < 0x20 || b == 0x7f => {
                            out.extend_from_slice(format!("\\u{:04x}", b).as_bytes())
                        }
                        b => out.push(b),
                    }
                }
            }
            Escape::Address => out.extend(
                v.iter()
                    .copied()
                    .filter(|b| b.is_ascii_alphanumeric() || b"._%+-@".contains(b)),
            ),
        }
    }
}

/// A message or key template: text with `{1}`, `{name}`, `{line}`, `{alarm}`, `{count}`,
/// `{first}`, `{last}`; `{{` and `}}` are braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`; the error names the offending piece.
    pub(crate) fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    lit.push(b'{');
                    i += 2;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    lit.push(b'}');
                    i += 2;
                }
                b'{' => {
                    let Some(len) = b[i + 1..].iter().position(|&c| c == b'}') else {
                        return Err(format!(
                            "`{}`: an unclosed `{{` (`{{{{` is a brace)",
                            &text[i..]
                        ));
                    };
                    let name = &text[i + 1..i + 1 + len];
                    let part = match name {
                        "line" => Part::Line,
                        "alarm" => Part::Alarm,
                        "count" => Part::Count,
                        "first" => Part::First,
                        "last" => Part::Last,
                        n if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                            Part::Group(n.parse().map_err(|_| format!("`{{{n}}}`: too large"))?)
                        }
                        n if !n.is_empty()
                            && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                            && !n.as_bytes()[0].is_ascii_digit() =>
                        {
                            Part::Named(n.to_string())
                        }
                        n => {
                            return Err(format!(
                                "`{{{n}}}`: not a group number, a group name or one of line, alarm, count, first, last"
                            ))
                        }
                    };
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                    i += len + 2;
                }
                b'}' => return Err(format!("`{}`: a lone `}}` (`}}}}` is a brace)", &text[i..])),
                c => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template { parts })
    }

    /// The template's text with every placeholder empty (static labels).
    pub(crate) fn text(&self) -> String {
        let mut out = Vec::new();
        for p in &self.parts {
            if let Part::Text(t) = p {
                out.extend_from_slice(t);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Whether it uses the raising rule's groups.
    pub(crate) fn uses_groups(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Group(_) | Part::Named(_)))
    }

    /// The group names it uses.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Named(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// The largest group number it uses.
    pub(crate) fn max_group(&self) -> Option<usize> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Group(n) => Some(*n),
                _ => None,
            })
            .max()
    }

    /// Write it with `ctx` into `out` (cleared first). A group that did not take part in the
    /// match is empty.
    fn render(&self, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
        self.render_with(ctx, out, Escape::None);
    }

    /// [`render`](Self::render), each substituted value written with `esc`.
    fn render_with(&self, ctx: &Ctx<'_>, out: &mut Vec<u8>, esc: Escape) {
        out.clear();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t),
                Part::Group(n) => {
                    if let Some(v) = ctx.caps.and_then(|c| c.group(*n)) {
                        esc.write(v, out);
                    }
                }
                Part::Named(n) => {
                    if let Some(v) = ctx.caps.and_then(|c| c.named(n)) {
                        esc.write(v, out);
                    }
                }
                Part::Line => esc.write(ctx.line, out),
                Part::Alarm => esc.write(ctx.alarm.as_bytes(), out),
                Part::Count => out.extend_from_slice(ctx.count.to_string().as_bytes()),
                Part::First => esc.write((ctx.time)(ctx.first).as_bytes(), out),
                Part::Last => esc.write((ctx.time)(ctx.last).as_bytes(), out),
            }
        }
    }
}

/// One rule's regex, compiled to give its groups.
#[derive(Debug)]
enum CapRegex {
    /// The rule as written, by PCRE2 (`rule-syntax = pcre`, the default): uWSGI's groups; with
    /// the literals its matches must hold, found at its first use.
    Pcre(pcre2::bytes::Regex, Box<str>, OnceLock<Option<Needles>>),
    /// A `rule-syntax = rust` rule.
    Rust(regex_automata::meta::Regex),
    /// A field rule (`log-alarm-json`, `log-alarm-logfmt`): its fields' values.
    Fields(crate::rules::fields::FieldRule),
}

/// The literals every match of a PCRE rule holds (the required literals of its translation for
/// the automaton, which matches a superset of its lines): a line with none of them cannot
/// match it.
#[derive(Debug)]
pub(crate) struct Needles {
    finders: Vec<memchr::memmem::Finder<'static>>,
    /// Compared ignoring ASCII case (the literals are lower-cased, the line too).
    fold: bool,
}

impl Needles {
    /// None when the rule has no such literals (or is not one the automaton runs).
    fn of(pattern: &str) -> Option<Needles> {
        let t = crate::rules::pcre::translate(pattern).ok()?;
        let h = crate::rules::parse_regex(&t.pattern).ok()?;
        let (lits, fold) = crate::rules::rule_needles(&h)?;
        if lits.is_empty() {
            return None;
        }
        let finders = lits
            .iter()
            .map(|l| {
                let l = if fold {
                    l.to_ascii_lowercase()
                } else {
                    l.clone()
                };
                memchr::memmem::Finder::new(&l).into_owned()
            })
            .collect();
        Some(Needles { finders, fold })
    }

    /// Whether `line` holds none of the literals (`lower`: the line lower-cased, made once).
    fn absent(&self, line: &[u8], lower: &mut Option<Vec<u8>>) -> bool {
        let hay = if self.fold {
            lower.get_or_insert_with(|| line.to_ascii_lowercase())
        } else {
            line
        };
        !self.finders.iter().any(|f| f.find(hay).is_some())
    }
}

/// What a captor is built from: a rule's regex, or a field rule's fields.
#[derive(Debug)]
pub(crate) enum CapSource<'a> {
    Regex(&'a str),
    Fields(&'a crate::rules::fields::FieldSpec),
}

/// One rule's groups: how many (without the whole match) and their names.
pub(crate) type Groups = (usize, Vec<String>);

/// The groups of the rule that raised an alarm: the first rule (in configuration order) that
/// names the alarm and matches the line.
#[derive(Debug)]
pub(crate) struct Captor {
    rules: Vec<CapRegex>,
    /// One literal search over the literals of the PCRE rules, built at the first capture.
    index: OnceLock<Option<CapIndex>>,
}

/// Which of a captor's rules a line can match, found in one pass: the literals of every PCRE
/// rule that has some (each at least 3 bytes) in one [`LitScan`](crate::litscan::LitScan).
/// PERF: Debian's 2,101 rules, one in ten behind a template using the match: a `memmem` per
/// literal of each of ~210 rules per raising line was most of the alarm thread's time, and a
/// full queue holds the reader (`overflow block`).
#[derive(Debug)]
struct CapIndex {
    scan: crate::litscan::LitScan,
    /// Per rule: whether its literals are in `scan` (a line in which it finds none of them
    /// cannot match the rule).
    indexed: Vec<bool>,
}

impl CapIndex {
    /// None when no rule has literals the search takes.
    fn of(rules: &[CapRegex]) -> Option<CapIndex> {
        let mut needles = Vec::new();
        let mut indexed = vec![false; rules.len()];
        for (i, re) in rules.iter().enumerate() {
            let CapRegex::Pcre(_, pattern, lits) = re else {
                continue;
            };
            let Some(n) = lits.get_or_init(|| Needles::of(pattern)) else {
                continue;
            };
            let takes = |l: &[u8]| l.len() >= 3 && !l.contains(&b'\n');
            if !n.finders.iter().all(|f| takes(f.needle())) {
                continue;
            }
            indexed[i] = true;
            needles.extend(n.finders.iter().map(|f| crate::litscan::Needle {
                bytes: f.needle().into(),
                ci: n.fold,
                rule: i as u32,
            }));
        }
        let scan = crate::litscan::LitScan::new(needles)?;
        Some(CapIndex { scan, indexed })
    }

    /// The rules `line` may match, in order: those whose literals it holds, and every rule
    /// not indexed.
    fn candidates(&self, line: &[u8]) -> Vec<usize> {
        let mut rules: Vec<usize> = (self.indexed.iter().enumerate())
            .filter_map(|(i, &x)| (!x).then_some(i))
            .collect();
        self.scan.each(line, 0, line.len(), &mut |_, n| {
            rules.push(n.rule as usize);
            true
        });
        rules.sort_unstable();
        rules.dedup();
        rules
    }
}

/// The groups of one match (copied: only raising lines pay), and the matching rule's group
/// names.
#[derive(Debug)]
struct Caps<'c> {
    values: Vec<Option<Vec<u8>>>,
    names: &'c HashMap<String, usize>,
}

impl Caps<'_> {
    fn group(&self, n: usize) -> Option<&[u8]> {
        self.values.get(n).and_then(|v| v.as_deref())
    }
    fn named(&self, n: &str) -> Option<&[u8]> {
        self.names.get(n).and_then(|&i| self.group(i))
    }
}

/// A field's name as a template group name (`http.status` → `http_status`).
pub(crate) fn field_group(field: &str) -> String {
    field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl Captor {
    /// The captor of `patterns` (each a rule's regex: PCRE as written when `pcre`, else the
    /// Rust syntax), in configuration order. Returns it with each rule's group count and names.
    pub(crate) fn new(
        sources: &[CapSource<'_>],
        pcre: bool,
    ) -> Result<(Captor, Vec<Groups>), String> {
        let mut rules = Vec::new();
        let mut groups = Vec::new();
        for s in sources {
            let p = match s {
                CapSource::Fields(spec) => {
                    let f = crate::rules::fields::FieldRule::new(spec)?;
                    let names = spec.conds.iter().map(|c| field_group(&c.field)).collect();
                    groups.push((spec.conds.len(), names));
                    rules.push(CapRegex::Fields(f));
                    continue;
                }
                CapSource::Regex(p) => p,
            };
            if pcre {
                let re = pcre2::bytes::RegexBuilder::new()
                    .jit_if_available(true)
                    .build(p)
                    .map_err(|e| format!("{p}: {e}"))?;
                let names = re.capture_names().iter().flatten().cloned().collect();
                groups.push((re.captures_len().saturating_sub(1), names));
                rules.push(CapRegex::Pcre(re, (*p).into(), OnceLock::new()));
            } else {
                let re = regex_automata::meta::Regex::builder()
                    .syntax(
                        regex_automata::util::syntax::Config::new()
                            .unicode(false)
                            .utf8(false),
                    )
                    .build(p)
                    .map_err(|e| format!("{p}: {e}"))?;
                let info = re.group_info();
                let names = info
                    .pattern_names(regex_automata::PatternID::ZERO)
                    .flatten()
                    .map(str::to_string)
                    .collect();
                groups.push((info.group_len(regex_automata::PatternID::ZERO) - 1, names));
                rules.push(CapRegex::Rust(re));
            }
        }
        let index = OnceLock::new();
        Ok((Captor { rules, index }, groups))
    }

    /// Whether one of its rules matches `line`.
    pub(crate) fn matches(&self, line: &[u8]) -> bool {
        self.rules.iter().any(|re| match re {
            CapRegex::Pcre(re, ..) => re.is_match(line).unwrap_or(false),
            CapRegex::Rust(re) => re.is_match(line),
            CapRegex::Fields(f) => f.holds(line),
        })
    }

    /// The groups of the first rule that matches `line`, with a fresh name table per call
    /// (captures are computed only for raising lines).
    fn capture(
        &self,
        line: &[u8],
        names: &mut HashMap<String, usize>,
    ) -> Option<Vec<Option<Vec<u8>>>> {
        let copy = |r: Option<Range<usize>>| r.map(|r| line[r].to_vec());
        let mut lower = None;
        let index = self.index.get_or_init(|| CapIndex::of(&self.rules));
        let order = match index {
            Some(ix) => ix.candidates(line),
            None => (0..self.rules.len()).collect(),
        };
        for (i, re) in order
            .into_iter()
            .filter_map(|i| Some((i, self.rules.get(i)?)))
        {
            names.clear();
            match re {
                CapRegex::Fields(f) => {
                    let Some(values) = f.values_all(line, true) else {
                        continue;
                    };
                    let mut out = vec![Some(line.to_vec())];
                    for (i, (field, v)) in values.into_iter().enumerate() {
                        // The conditions' fields come first: they win a name.
                        names.entry(field_group(&field)).or_insert(i + 1);
                        out.push(Some(v));
                    }
                    return Some(out);
                }
                CapRegex::Pcre(re, pattern, needles) => {
                    // PERF: an alarm's rules are tried in order; most cannot match a line that
                    // lacks all of their literals (Debian's rules behind one template: 43 µs
                    // an event with PCRE2 on each, see PERF.md eighteenth run).
                    let needles = needles.get_or_init(|| Needles::of(pattern));
                    // An indexed rule is here only when the line holds one of its literals.
                    let indexed = index
                        .as_ref()
                        .is_some_and(|ix| ix.indexed.get(i) == Some(&true));
                    if !indexed && needles.as_ref().is_some_and(|n| n.absent(line, &mut lower)) {
                        continue;
                    }
                    let Ok(Some(c)) = re.captures(line) else {
                        continue;
                    };
                    for (i, n) in re.capture_names().iter().enumerate() {
                        if let Some(n) = n {
                            names.insert(n.clone(), i);
                        }
                    }
                    return Some(
                        (0..c.len())
                            .map(|i| copy(c.get(i).map(|m| m.start()..m.end())))
                            .collect(),
                    );
                }
                CapRegex::Rust(re) => {
                    let mut c = re.create_captures();
                    re.captures(line, &mut c);
                    if !c.is_match() {
                        continue;
                    }
                    let info = re.group_info();
                    for (i, n) in info
                        .pattern_names(regex_automata::PatternID::ZERO)
                        .enumerate()
                    {
                        if let Some(n) = n {
                            names.insert(n.to_string(), i);
                        }
                    }
                    let len = info.group_len(regex_automata::PatternID::ZERO);
                    return Some(
                        (0..len)
                            .map(|i| copy(c.get_group(i).map(|s| s.range())))
                            .collect(),
                    );
                }
            }
        }
        None
    }
}

/// What the template sees.
struct Ctx<'a> {
    line: &'a [u8],
    alarm: &'a str,
    caps: Option<&'a Caps<'a>>,
    count: usize,
    first: Instant,
    last: Instant,
    time: &'a dyn Fn(Instant) -> String,
}

/// `alarm-threshold`: fire on the COUNT-th match within SECONDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold {
    pub(crate) count: usize,
    pub(crate) window: Duration,
}

/// An alarm's policy beyond uWSGI's (the `alarm-template`, `alarm-key`, `alarm-threshold`
/// options), fixed at start-up.
#[derive(Debug, Default)]
pub(crate) struct Policy {
    pub(crate) template: Option<Template>,
    /// How the message template writes values (`alarm-template-json`: JSON string escapes).
    pub(crate) template_escape: Escape,
    pub(crate) key: Option<Template>,
    pub(crate) threshold: Option<Threshold>,
    /// The rules naming the alarm, when a template uses their groups.
    pub(crate) captor: Option<Captor>,
    /// Most keys remembered (`alarm-keys-max`).
    pub(crate) keys_max: usize,
    /// The options that set it, as written (`logalarm check`).
    pub(crate) shown: Vec<String>,
    /// `alarm-digest`: lines held by anti-flood are summed up in one message this long after
    /// the first of them.
    pub(crate) digest: Option<Duration>,
    /// `alarm-absence`: the alarm's lines are heartbeats; it fires when none came for this
    /// long, and again (a recovery) when one comes back.
    pub(crate) absence: Option<Duration>,
    /// The action's own templates (`alertmanager:` labels, `curl:` with `templates=1`), each
    /// with how its values are escaped, rendered with each firing.
    pub(crate) extra: Vec<(Template, Escape)>,
    /// `alarm-multiline`: lines that follow a raising line and match the continuation join
    /// its message.
    pub(crate) multiline: Option<Multiline>,
    /// `alarm-msg-size`: a gathered message never grows past it.
    pub(crate) msg_size: usize,
}

/// `alarm-multiline`: which raising lines start an event, which continue one.
#[derive(Debug)]
pub(crate) struct Multiline {
    /// The alarm's own rules.
    pub(crate) starts: Captor,
    /// The continuation rule.
    pub(crate) cont: Captor,
}

/// Most lines a gathered event holds.
const MULTILINE_MAX_LINES: usize = 200;

/// A gathered event ends when no line continued it for this long.
pub(crate) const MULTILINE_WAIT: Duration = Duration::from_secs(1);

/// An event being gathered (`alarm-multiline`).
#[derive(Debug)]
struct Gather {
    msg: Vec<u8>,
    /// Where its first line starts and its last line ends (see `Event::pos`).
    first: u64,
    end: u64,
    lines: usize,
    started: Instant,
    last: Instant,
}

/// A gathered event, complete: its message, when its first line came, where it started.
#[derive(Debug)]
pub(crate) struct Gathered {
    pub(crate) msg: Vec<u8>,
    pub(crate) started: Instant,
    pub(crate) first: u64,
}

impl Policy {
    /// Whether it is uWSGI's behaviour (no template, key or threshold).
    pub(crate) fn is_plain(&self) -> bool {
        self.template.is_none()
            && self.key.is_none()
            && self.threshold.is_none()
            && self.absence.is_none()
            && !self.extra.iter().any(|(t, _)| t.uses_groups())
    }

    /// Whether a template uses the raising rule's groups.
    pub(crate) fn needs_groups(&self) -> bool {
        self.template.as_ref().is_some_and(Template::uses_groups)
            || self.key.as_ref().is_some_and(Template::uses_groups)
            || self.extra.iter().any(|(t, _)| t.uses_groups())
    }
}

/// Per-key state.
#[derive(Debug, Default)]
struct KeyState {
    /// When this key last fired.
    fired: Option<Instant>,
    /// The threshold's window: the times of the matches not yet counted toward a firing.
    hits: VecDeque<Instant>,
}

/// Keys in two generations: a key is looked up in the current one, else moved up from the
/// previous one; when the current one holds half the cap, it becomes the previous one and the
/// old previous one is forgotten. Memory is bounded by the cap; a key used in the last two
/// generations is kept.
#[derive(Debug, Default)]
struct Keys {
    current: HashMap<Box<[u8]>, KeyState>,
    previous: HashMap<Box<[u8]>, KeyState>,
    max: usize,
    evicted: u64,
}

impl Keys {
    fn get(&mut self, key: &[u8]) -> &mut KeyState {
        if !self.current.contains_key(key) {
            let half = (self.max / 2).max(1);
            if self.current.len() >= half {
                let old = std::mem::replace(&mut self.previous, std::mem::take(&mut self.current));
                self.evicted += old.len() as u64;
            }
            let state = self.previous.remove(key).unwrap_or_default();
            self.current.insert(key.into(), state);
        }
        self.current.entry(key.into()).or_default()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

/// Why a raised line did not fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Held {
    /// Anti-flood: the same message (or key) fired at this time, less than `alarm-freq` ago.
    Flood(Instant),
    /// Below the threshold: this many matches of the needed count within the window.
    Below(usize),
    /// A heartbeat (`alarm-absence`): the awaited line came, nothing to send.
    Heartbeat,
    /// `alarm-multiline`: the line starts an event, decided when the event is complete.
    Gathering,
    /// `alarm-multiline`: the line joined an event (or continued none).
    Merged,
}

/// Lines held by anti-flood since the last digest (`alarm-digest`).
#[derive(Debug, Default)]
struct Batch {
    n: u64,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    /// The first and the last message, and up to [`SAMPLES`] distinct ones.
    first: Vec<u8>,
    last: Vec<u8>,
    samples: Vec<Vec<u8>>,
}

/// Distinct messages a digest shows.
const SAMPLES: usize = 3;

/// `alarm-absence` state.
#[derive(Debug, Default)]
struct Watch {
    /// When the silence being timed began: the last heartbeat, or the start.
    since: Option<Instant>,
    /// The heartbeat before the silence, if one came at all.
    seen: bool,
    /// The absence was reported and no heartbeat came since.
    reported: bool,
}

/// One alarm's suppression state (see the module doc).
#[derive(Debug)]
pub(crate) struct Suppress {
    policy: std::sync::Arc<Policy>,
    flood: AntiFlood,
    freq: Duration,
    keys: Keys,
    key_buf: Vec<u8>,
    names: HashMap<String, usize>,
    batch: Batch,
    watch: Watch,
    /// The action's templates as rendered for the last firing, and whether it was a recovery.
    rendered: Vec<Vec<u8>>,
    /// `rendered` holds the templates' text without a line (PERF: kept, not made again per
    /// alarm: most alarms have no template).
    rendered_static: bool,
    recovery: bool,
    gather: Option<Gather>,
    ready: VecDeque<Gathered>,
    /// `alarm-cluster`: decisions shared by the fleet (live lanes only; `replay` decides
    /// alone).
    link: Option<crate::cluster::Link>,
    /// Lines held by the fleet's anti-flood since this time: the fleet's digest is claimed
    /// when it is due.
    fleet_due: Option<Instant>,
}

impl Suppress {
    pub(crate) fn new(policy: std::sync::Arc<Policy>, freq: Duration) -> Suppress {
        let max = policy.keys_max.max(2);
        Suppress {
            policy,
            flood: AntiFlood::new(freq),
            freq,
            keys: Keys {
                max,
                ..Keys::default()
            },
            key_buf: Vec::new(),
            names: HashMap::new(),
            batch: Batch::default(),
            watch: Watch::default(),
            rendered: Vec::new(),
            rendered_static: false,
            recovery: false,
            gather: None,
            ready: VecDeque::new(),
            link: None,
            fleet_due: None,
        }
    }

    /// Share this alarm's decisions with the fleet (`alarm-cluster`).
    pub(crate) fn set_link(&mut self, link: crate::cluster::Link) {
        self.link = Some(link);
    }

    /// The fleet's digest, if this logalarm claims it (see `cluster::Link::claim`).
    fn fleet_digest(&mut self, alarm: &str, force: bool, now: Instant) -> Option<Vec<u8>> {
        let every = self.policy.digest?;
        let since = self.fleet_due?;
        if !force && now < since + every {
            return None;
        }
        let claimed = self.link.as_mut()?.claim();
        match claimed {
            // No answer: the counts stay on the server; tried again at the next tick.
            None => None,
            Some(c) => {
                self.fleet_due = None;
                c.map(|c| fleet_digest(alarm, &c))
            }
        }
    }

    /// `alarm-multiline`: take the raised `line` at `pos` (see `Event::pos`) into an event.
    /// `None`: the alarm gathers nothing, decide the line as usual. `Some(Gathering)`: it
    /// starts an event (decided when [`complete`](Self::complete) hands it over);
    /// `Some(Merged)`: it joined the event before it, or continued nothing.
    pub(crate) fn gather(&mut self, line: &[u8], pos: (u64, u64), now: Instant) -> Option<Held> {
        let m = self.policy.multiline.as_ref()?;
        let text = crate::rules::without_terminator(line);
        let cap = self.policy.msg_size;
        if let Some(g) = &mut self.gather {
            let follows = pos.0 != u64::MAX && pos.0 == g.end;
            if follows
                && g.lines < MULTILINE_MAX_LINES
                && g.msg.len() + line.len() <= cap
                && m.cont.matches(text)
            {
                g.msg.extend_from_slice(line);
                g.end = pos.1;
                g.lines += 1;
                g.last = now;
                return Some(Held::Merged);
            }
            if let Some(g) = self.gather.take() {
                self.ready.push_back(Gathered {
                    msg: g.msg,
                    started: g.started,
                    first: g.first,
                });
            }
        }
        if !m.starts.matches(text) && m.cont.matches(text) {
            // A continuation with nothing to continue (a stray indented line).
            return Some(Held::Merged);
        }
        let mut msg = line.to_vec();
        if !msg.ends_with(b"\n") {
            msg.push(b'\n');
        }
        self.gather = Some(Gather {
            msg,
            first: pos.0,
            end: pos.1,
            lines: 1,
            started: now,
            last: now,
        });
        Some(Held::Gathering)
    }

    /// A gathered event that is complete at `now`: one that a later line ended, or one no
    /// line continued for [`MULTILINE_WAIT`] (any, when `force`: shutdown, the end of a
    /// replay). Call until `None`; decide its message with [`decide`](Self::decide).
    /// Whether [`complete`](Self::complete) may return something (an event is gathered or
    /// ready): without, the caller need not read the clock.
    pub(crate) fn has_gathered(&self) -> bool {
        !self.ready.is_empty() || self.gather.is_some()
    }

    pub(crate) fn complete(&mut self, now: Instant, force: bool) -> Option<Gathered> {
        if let Some(g) = self.ready.pop_front() {
            return Some(g);
        }
        let idle = self
            .gather
            .as_ref()
            .is_some_and(|g| force || now.saturating_duration_since(g.last) >= MULTILINE_WAIT);
        if !idle {
            return None;
        }
        self.gather.take().map(|g| Gathered {
            msg: g.msg,
            started: g.started,
            first: g.first,
        })
    }

    /// The action's templates as rendered for the message just decided or due, and whether
    /// that message is a recovery (it resolves an absence).
    pub(crate) fn rendered(&self) -> (&[Vec<u8>], bool) {
        (&self.rendered, self.recovery)
    }

    /// Render the action's templates without a line (digests, absences): their text.
    fn render_static(&mut self) {
        self.recovery = false;
        if self.rendered_static {
            return;
        }
        self.rendered_static = true;
        self.rendered = self
            .policy
            .extra
            .iter()
            .map(|(t, _)| t.text().into_bytes())
            .collect();
    }

    /// Start timing absences from `now` (the live start, or the replayed log's first time),
    /// unless already started.
    pub(crate) fn start(&mut self, now: Instant) {
        self.watch.since.get_or_insert(now);
    }

    /// A message due at `now` without a line: a digest of the held lines (`alarm-digest`),
    /// or an absence (`alarm-absence`). Call until it returns `None`. Each comes with the
    /// time it was due (the replay reports that time).
    pub(crate) fn tick(
        &mut self,
        alarm: &str,
        now: Instant,
        time: &dyn Fn(Instant) -> String,
    ) -> Option<(Instant, Vec<u8>, &'static str)> {
        if let Some(l) = &mut self.link {
            // The counts of lines held without a round trip, for the fleet's digest.
            l.flush();
        }
        if let Some(msg) = self.fleet_digest(alarm, false, now) {
            self.render_static();
            return Some((now, msg, "digest"));
        }
        if let (Some(every), Some(t0)) = (self.policy.digest, self.batch.first_at) {
            let due = t0 + every;
            if now >= due {
                let b = std::mem::take(&mut self.batch);
                self.render_static();
                return Some((due, digest(alarm, &b, time), "digest"));
            }
        }
        if let (Some(quiet), Some(since)) = (self.policy.absence, self.watch.since) {
            let due = since + quiet;
            if !self.watch.reported && now >= due {
                self.watch.reported = true;
                let msg = if self.watch.seen {
                    format!(
                        "{alarm}: no line for {} s (the last at {})\n",
                        quiet.as_secs(),
                        time(since)
                    )
                } else {
                    format!(
                        "{alarm}: no line for {} s (none since {})\n",
                        quiet.as_secs(),
                        time(since)
                    )
                };
                self.render_static();
                return Some((due, msg.into_bytes(), "absence"));
            }
        }
        None
    }

    /// The digest of the lines held so far, not yet due (at shutdown, at the end of a
    /// replay): what was held is never left untold.
    pub(crate) fn flush(
        &mut self,
        alarm: &str,
        time: &dyn Fn(Instant) -> String,
    ) -> Option<(Instant, Vec<u8>, &'static str)> {
        if let Some(msg) = self.fleet_digest(alarm, true, Instant::now()) {
            self.render_static();
            return Some((Instant::now(), msg, "digest"));
        }
        let last = self.batch.last_at?;
        self.policy.digest?;
        let b = std::mem::take(&mut self.batch);
        self.render_static();
        Some((last, digest(alarm, &b, time), "digest"))
    }

    /// Note a line held by anti-flood for the digest.
    fn hold(&mut self, msg: &[u8], now: Instant) {
        if self.policy.digest.is_none() {
            return;
        }
        let b = &mut self.batch;
        b.n += 1;
        if b.first_at.is_none() {
            b.first_at = Some(now);
            b.first = msg.to_vec();
        }
        b.last_at = Some(now);
        b.last.clear();
        b.last.extend_from_slice(msg);
        if b.samples.len() < SAMPLES && !b.samples.iter().any(|s| s.as_slice() == msg) {
            b.samples.push(msg.to_vec());
        }
    }

    /// The threshold, if any.
    pub(crate) fn threshold(&self) -> Option<Threshold> {
        self.policy.threshold
    }

    /// Whether anti-flood is per key (`alarm-key`) rather than per message.
    pub(crate) fn keyed(&self) -> bool {
        self.policy.key.is_some()
    }

    /// Keys forgotten to keep within `alarm-keys-max`.
    pub(crate) fn keys(&self) -> u64 {
        self.keys.evicted
    }

    /// Decide for `line` (the alarm's message: the line cut to `alarm-msg-size`, terminator
    /// included) raised at `now`. `Ok(None)`: fire with `line` itself; `Ok(Some(msg))`: fire
    /// with the template's message; `Err`: held, and why. `time` writes a time for `{first}`
    /// and `{last}`.
    pub(crate) fn decide(
        &mut self,
        line: &[u8],
        alarm: &str,
        now: Instant,
        time: &dyn Fn(Instant) -> String,
    ) -> Result<Option<Vec<u8>>, Held> {
        // In a fleet every line takes the general path (its anti-flood is the fleet's).
        if self.policy.is_plain() && self.link.is_none() {
            let verdict = self
                .flood
                .decide(line, now)
                .map(|()| None)
                .map_err(Held::Flood);
            if verdict.is_err() {
                self.hold(crate::rules::without_terminator(line), now);
            } else {
                self.render_static();
            }
            return verdict;
        }
        if self.policy.absence.is_some() {
            // A heartbeat: timed from here; back after a reported absence: the recovery.
            let w = &mut self.watch;
            let was = w.since.unwrap_or(now);
            let back = w.reported;
            *w = Watch {
                since: Some(now),
                seen: true,
                reported: false,
            };
            if !back {
                return Err(Held::Heartbeat);
            }
            let gap = now.saturating_duration_since(was).as_secs();
            self.render_static();
            self.recovery = true;
            return Ok(Some(
                format!(
                    "{alarm}: lines again after {gap} s without; this one: {}\n",
                    String::from_utf8_lossy(crate::rules::without_terminator(line))
                )
                .into_bytes(),
            ));
        }
        let text = crate::rules::without_terminator(line);
        let p = &*self.policy;
        let spans = if p.needs_groups() {
            p.captor
                .as_ref()
                .and_then(|c| c.capture(text, &mut self.names))
        } else {
            None
        };
        let caps = spans.map(|values| Caps {
            values,
            names: &self.names,
        });
        let mut ctx = Ctx {
            line: text,
            alarm,
            caps: caps.as_ref(),
            count: 1,
            first: now,
            last: now,
            time,
        };
        self.key_buf.clear();
        if let Some(k) = &p.key {
            k.render(&ctx, &mut self.key_buf);
        }
        // The fleet decides when it answers (`alarm-cluster`): anti-flood on the key, or on
        // the line without one.
        let fleet = match &mut self.link {
            Some(link) => {
                let flood_key: &[u8] = if p.key.is_some() { &self.key_buf } else { text };
                link.decide(
                    flood_key,
                    &self.key_buf,
                    self.freq,
                    p.threshold,
                    p.digest.is_some(),
                    text,
                )
            }
            None => None,
        };
        match fleet {
            Some(Verdict::Below(n)) => return Err(Held::Below(n)),
            Some(Verdict::Flood { ago }) => {
                if p.digest.is_some() {
                    self.fleet_due.get_or_insert(now);
                }
                return Err(Held::Flood(now.checked_sub(ago).unwrap_or(now)));
            }
            Some(Verdict::Fire { count, age }) if p.threshold.is_some() => {
                ctx.count = count;
                ctx.first = now.checked_sub(age).unwrap_or(now);
            }
            Some(Verdict::Fire { .. }) => {}
            None => {}
        }
        if fleet.is_none() && (p.key.is_some() || p.threshold.is_some()) {
            let state = self.keys.get(&self.key_buf);
            if let Some(th) = p.threshold {
                state.hits.push_back(now);
                while state
                    .hits
                    .front()
                    .is_some_and(|&t| now.saturating_duration_since(t) >= th.window)
                {
                    state.hits.pop_front();
                }
                // Bounded: never more than the count is kept.
                while state.hits.len() > th.count {
                    state.hits.pop_front();
                }
                if state.hits.len() < th.count {
                    return Err(Held::Below(state.hits.len()));
                }
                ctx.count = state.hits.len();
                ctx.first = state.hits.front().copied().unwrap_or(now);
            }
            if p.key.is_some() {
                if let Some(t) = state.fired {
                    if now.saturating_duration_since(t) < self.freq {
                        self.hold(text, now);
                        return Err(Held::Flood(t));
                    }
                }
                state.fired = Some(now);
            }
            state.hits.clear();
        }
        if p.key.is_none() && fleet.is_none() {
            // No key: uWSGI's anti-flood on the line.
            if let Err(t) = self.flood.decide(line, now) {
                self.hold(text, now);
                return Err(Held::Flood(t));
            }
        }
        self.recovery = false;
        self.rendered_static = false;
        self.rendered = p
            .extra
            .iter()
            .map(|(t, esc)| {
                let mut o = Vec::new();
                t.render_with(&ctx, &mut o, *esc);
                o
            })
            .collect();
        Ok(p.template.as_ref().map(|t| {
            let mut out = Vec::with_capacity(line.len() + 64);
            t.render_with(&ctx, &mut out, p.template_escape);
            if line.ends_with(b"\n") && !out.ends_with(b"\n") {
                out.push(b'\n');
            }
            out
        }))
    }
}

/// The fleet's digest (`alarm-cluster`): the lines every logalarm's anti-flood held.
fn fleet_digest(alarm: &str, c: &crate::cluster::Claimed) -> Vec<u8> {
    let at =
        |ms: u64| crate::sys::time::local_iso(std::time::UNIX_EPOCH + Duration::from_millis(ms));
    let text = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
    let mut hosts: Vec<String> = c
        .hosts
        .iter()
        .take(10)
        .map(|(h, n)| format!("{h} {n}"))
        .collect();
    if c.hosts.len() > 10 {
        hosts.push(format!("{} more", c.hosts.len() - 10));
    }
    let mut s = format!(
        "{alarm}: {} more like this between {} and {} on {} logalarm(s) ({}); first: {}",
        c.n,
        at(c.first_at),
        at(c.last_at),
        c.hosts.len(),
        hosts.join(", "),
        text(&c.first)
    );
    digest_end(&mut s, c.n, &c.last, &c.samples);
    s.into_bytes()
}

/// A digest's end: the last message (when more than one line was held), the distinct ones.
fn digest_end(s: &mut String, n: u64, last: &[u8], samples: &[Vec<u8>]) {
    let text = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
    if n > 1 {
        s.push_str(&format!("; last: {}", text(last)));
    }
    if samples.len() > 1 {
        let samples: Vec<String> = samples.iter().map(|m| text(m)).collect();
        s.push_str(&format!(
            "; {} distinct: {}",
            samples.len(),
            samples.join(" | ")
        ));
    }
    s.push('\n');
}

/// The digest of `b`: one message for the lines anti-flood held.
fn digest(alarm: &str, b: &Batch, time: &dyn Fn(Instant) -> String) -> Vec<u8> {
    let at = |t: Option<Instant>| t.map(time).unwrap_or_default();
    let text = |m: &[u8]| String::from_utf8_lossy(m).into_owned();
    let mut s = format!(
        "{alarm}: {} more like this between {} and {}; first: {}",
        b.n,
        at(b.first_at),
        at(b.last_at),
        text(&b.first)
    );
    digest_end(&mut s, b.n, &b.last, &b.samples);
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn policy(
        template: Option<&str>,
        key: Option<&str>,
        th: Option<(usize, u64)>,
        rules: &[&str],
    ) -> Arc<Policy> {
        let rules: Vec<CapSource<'_>> = rules.iter().map(|r| CapSource::Regex(r)).collect();
        let (captor, _) = Captor::new(&rules, true).unwrap();
        Arc::new(Policy {
            template: template.map(|t| Template::parse(t).unwrap()),
            template_escape: Escape::None,
            key: key.map(|t| Template::parse(t).unwrap()),
            threshold: th.map(|(count, s)| Threshold {
                count,
                window: Duration::from_secs(s),
            }),
            captor: Some(captor),
            keys_max: 100,
            shown: Vec::new(),
            digest: None,
            absence: None,
            extra: Vec::new(),
            multiline: None,
            msg_size: 8192,
        })
    }

    fn no_time(_: Instant) -> String {
        "T".into()
    }

    /// The literal check before PCRE2 never changes which rule's groups a line gets: the
    /// captor with it against each rule run in PCRE2 alone, in order.
    #[test]
    fn captures_skip_only_rules_that_cannot_match() {
        let rules = [
            r"disk (\w+) full",
            r"(?i)OUT OF (MEMORY)",
            r"user (?P<user>\w+)(?= from)",
            r"^(\d+) bytes",
            r"xy(\d)",
            r"(a|b)",
        ];
        let sources: Vec<CapSource<'_>> = rules.iter().map(|r| CapSource::Regex(r)).collect();
        let (captor, _) = Captor::new(&sources, true).unwrap();
        let plain: Vec<pcre2::bytes::Regex> = rules
            .iter()
            .map(|r| pcre2::bytes::Regex::new(r).unwrap())
            .collect();
        let lines: [&[u8]; 11] = [
            b"xy7 disk sda full",
            b"OUT of memory xy8",
            b"disk sda full",
            b"kernel: Out Of Memory: killed",
            b"failed for user root from 10.0.0.1",
            b"failed for user root to 10.0.0.1",
            b"512 bytes at disk sdb full",
            b"nothing here",
            b"just b",
            b"DISK X FULL",
            b"\xff\xfe out of memory \x00",
        ];
        // Needles are found on first use: exercise both the first and later calls.
        for _ in 0..2 {
            for line in lines {
                let mut names = HashMap::new();
                let got = captor.capture(line, &mut names);
                let want = plain.iter().find_map(|re| {
                    let c = re.captures(line).unwrap()?;
                    Some(
                        (0..c.len())
                            .map(|i| c.get(i).map(|m| line[m.start()..m.end()].to_vec()))
                            .collect::<Vec<_>>(),
                    )
                });
                assert_eq!(got, want, "{}", String::from_utf8_lossy(line));
            }
        }
        // The literal-free rule and the look-ahead rule keep no wrong needles.
        let needles = |i: usize| match &captor.rules[i] {
            CapRegex::Pcre(_, p, n) => n.get_or_init(|| Needles::of(p)).is_some(),
            _ => unreachable!(),
        };
        assert!(needles(0) && needles(1) && needles(2) && needles(3) && needles(4));
        assert!(!needles(5));
        // One search names the candidates of every rule with literals.
        let index = captor.index.get().and_then(Option::as_ref);
        let indexed = index.map(|ix| ix.indexed.clone());
        assert_eq!(indexed, Some(vec![true, true, true, true, true, false]));
    }

    #[test]
    fn templates_parse_and_refuse() {
        assert!(Template::parse("{host} {1} {{x}} {line}").is_ok());
        for bad in ["{", "x}", "{a-b}", "{}", "{1a}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn captures_fill_the_template() {
        let p = policy(
            Some("{alarm}: {user} from {2} ({count})"),
            None,
            None,
            &[r"Failed password for (?<user>\S+) from (\S+)"],
        );
        let mut s = Suppress::new(p, Duration::from_secs(3));
        let t0 = Instant::now();
        let got = s.decide(
            b"Failed password for root from 10.0.0.1 port 22\n",
            "ssh",
            t0,
            &no_time,
        );
        assert_eq!(got, Ok(Some(b"ssh: root from 10.0.0.1 (1)\n".to_vec())));
    }

    #[test]
    fn per_key_threshold_and_anti_flood() {
        let p = policy(None, Some("{ip}"), Some((3, 60)), &[r"from (?<ip>\S+)"]);
        let mut s = Suppress::new(p, Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut d = |line: &[u8], t| s.decide(line, "a", t, &no_time).map(|_| ());
        assert_eq!(d(b"from A", at(0)), Err(Held::Below(1)));
        assert_eq!(d(b"from B", at(1)), Err(Held::Below(1)));
        assert_eq!(d(b"from A", at(2)), Err(Held::Below(2)));
        assert_eq!(d(b"from A", at(3)), Ok(()));
        // Counted again from zero; anti-flood per key holds the next firing of A within 10 s.
        assert_eq!(d(b"from A", at(4)), Err(Held::Below(1)));
        assert_eq!(d(b"from A", at(5)), Err(Held::Below(2)));
        assert_eq!(d(b"from A", at(6)), Err(Held::Flood(at(3))));
        // The window slides: B's first match is 70 s old.
        assert_eq!(d(b"from B", at(71)), Err(Held::Below(1)));
    }

    #[test]
    fn keys_stay_within_the_cap() {
        let p = policy(None, Some("{1}"), None, &[r"k(\d+)"]);
        let mut s = Suppress::new(p, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..1000 {
            let line = format!("k{i}");
            assert!(s.decide(line.as_bytes(), "a", t0, &no_time).is_ok());
        }
        let (evicted, kept) = (s.keys(), s.keys.len());
        assert!(kept <= 100, "{kept}");
        assert_eq!(evicted as usize + kept, 1000);
    }
}
