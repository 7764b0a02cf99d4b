//! What a candidate line must pass before a rule's automaton runs: gates and plain rules.
//!
//! Role: a rule found by one of its literals often has other required parts: [`Gate`]s are
//! literal sets of those parts (one literal of each must be in the line), checked with a memmem
//! each before the automaton; a rule that *is* its literals ([`is_plain`]: a plain string, an
//! alternation of them, one `(?i)` string) needs no automaton at all.
//! Invariants: a gate never rejects a line the rule matches (its literals come from the rule's
//! required parts); gates are made at a rule's first candidate line, not at start-up.
//! Rejected alternative: making gates at start-up — 7-11 ms of the 1,000-rule set's start-up.

#[allow(unused_imports)]
use super::*;
use crate::litscan::classes::ByteSet;

/// What a line named by a rule's literals must pass before the rule's automaton runs.
#[derive(Debug, Default)]
pub(super) struct Check {
    /// The rule matches exactly the lines holding one of its literals (a plain string, an
    /// alternation of them, or one string under `(?i)`): being named is matching.
    pub(super) plain: bool,
    /// With `plain`: the match is this literal at the line's start (`^literal`).
    pub(super) prefix: Option<Box<[u8]>>,
    /// Literals of the rule's other parts: a match holds one literal of each gate. Made at the
    /// rule's first candidate line, like its group's automaton.
    // PERF: made at start-up, they cost 7-11 ms of the 1,000-rule set's start-up.
    pub(super) gates: OnceLock<Vec<Gate>>,
    /// How far before the first place one of its literals starts in a line a match of the
    /// rule may start ([`lead`]; `None`: anywhere). Made with its gates.
    pub(super) lead: OnceLock<Option<usize>>,
}

/// One of these literals is in every match of a rule.
#[derive(Debug)]
pub(super) struct Gate(pub(super) Vec<GateLit>);

#[derive(Debug)]
pub(super) enum GateLit {
    Exact(Box<memchr::memmem::Finder<'static>>),
    /// Lower case, compared ignoring ASCII case; searched by its byte at the index (the
    /// rarest in log text, [`rarest_byte`]).
    Folded(Box<[u8]>, usize),
}

/// Most gates a rule gets (the best ones: each costs a search of the line).
pub(super) const MAX_GATES: usize = 3;

impl Gate {
    #[inline]
    pub(super) fn holds(&self, text: &[u8]) -> bool {
        self.0.iter().any(|l| match l {
            GateLit::Exact(f) => f.find(text).is_some(),
            GateLit::Folded(lower, rare) => contains_folded_at(text, lower, *rare),
        })
    }
}

/// The index of the byte of `lower` (lower case, compared ignoring ASCII case) rarest in log
/// text by the rarity model, either case counted; 0 for an empty one.
pub(super) fn rarest_byte(lower: &[u8]) -> usize {
    rarest_place(lower.iter().map(|&b| case_set(b, true)))
}

/// The bytes `b` stands for: itself, and its upper case too when `folded`.
pub(super) fn case_set(b: u8, folded: bool) -> ByteSet {
    let mut set = ByteSet::default();
    for x in [b, if folded { b.to_ascii_uppercase() } else { b }] {
        set[usize::from(x >> 6)] |= 1 << (x & 63);
    }
    set
}

/// The chance in log text of a byte of `set` (the rarity model's).
pub(super) fn chance_of(set: &ByteSet) -> f64 {
    let (c, _) = crate::litscan::class_chances(std::slice::from_ref(set));
    c.first().copied().unwrap_or(1.0)
}

/// The index of the rarest of `sets` in log text (the first of equals; 0 when there is none).
pub(super) fn rarest_place(sets: impl Iterator<Item = ByteSet>) -> usize {
    let chances: Vec<f64> = sets.map(|s| chance_of(&s)).collect();
    (0..chances.len())
        .min_by(|&a, &b| chances[a].total_cmp(&chances[b]))
        .unwrap_or(0)
}

/// Whether `hay` holds `lower` (lower case) ignoring ASCII case, looking for its byte at
/// `rare` first. PERF: its first byte was `s` for every `sshd[` gate of Debian's 2,101 rules
/// behind `(?i)`: a dozen searches a line, 18 % of that set's instructions (PERF.md
/// "forty-ninth run").
pub(super) fn contains_folded_at(hay: &[u8], lower: &[u8], rare: usize) -> bool {
    let Some(&r) = lower.get(rare) else {
        return true;
    };
    let mut i = rare;
    while let Some(j) = hay
        .get(i..)
        .and_then(|h| memchr::memchr2(r, r.to_ascii_uppercase(), h))
    {
        let start = i + j - rare;
        if hay
            .get(start..start + lower.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(lower))
        {
            return true;
        }
        i += j + 1;
    }
    false
}

/// Whether `hay` holds `lower` (lower case) ignoring ASCII case (looked for by its first byte:
/// at start-up, where it is not worth finding its rarest).
pub(super) fn contains_folded(hay: &[u8], lower: &[u8]) -> bool {
    contains_folded_at(hay, lower, 0)
}

/// A set of literals (each compared exactly, or ignoring ASCII case when its flag is set) one
/// of which every match holds.
pub(super) type LitSet = Vec<(Vec<u8>, bool)>;

/// Most literals in one gate.
pub(super) const MAX_GATE_LITS: usize = 8;

/// Literal sets every match of `h` holds one of: one per part of a concatenation (runs of
/// single-byte parts form one part: `(?i:error)` is five classes, `9 time\(s\)` a literal), and
/// for an alternation, unions of one set of each branch.
pub(super) fn required_sets(h: &Hir) -> Vec<LitSet> {
    let one = |h: &Hir| -> Vec<LitSet> {
        // PERF: a plain literal part is its own literal set: the extractor is not run for it.
        if let HirKind::Literal(hir::Literal(b)) = h.kind() {
            return if b.len() >= MIN_NEEDLE_LEN && memchr::memchr(b'\n', b).is_none() {
                vec![vec![(b.to_vec(), false)]]
            } else {
                Vec::new()
            };
        }
        rule_needles(h)
            .map(|(lits, ci)| vec![lits.into_iter().map(|l| (l, ci)).collect()])
            .unwrap_or_default()
    };
    match h.kind() {
        HirKind::Concat(parts) => {
            let mut sets = Vec::new();
            let mut run: Vec<Hir> = Vec::new();
            for p in parts {
                if matches!(p.kind(), HirKind::Literal(_) | HirKind::Class(_)) {
                    run.push(p.clone());
                    continue;
                }
                match run.len() {
                    0 => {}
                    1 => sets.extend(one(&run[0])),
                    _ => sets.extend(one(&Hir::concat(std::mem::take(&mut run)))),
                }
                run.clear();
                sets.extend(required_sets(p));
            }
            match run.len() {
                0 => {}
                1 => sets.extend(one(&run[0])),
                _ => sets.extend(one(&Hir::concat(run))),
            }
            // Runs that go on through small parts (`tty=(ftp)? ruser=`, `: (\+|-) `): their
            // literals hold the parts on both sides (" ruser=" alone is in every pam_unix
            // line; "tty= ruser=" or "tty=ftp ruser=" is not).
            let mut run: Vec<Hir> = Vec::new();
            let mut through = false;
            for p in parts.iter().chain([&Hir::fail()]) {
                let mut bare = p;
                while let HirKind::Capture(c) = bare.kind() {
                    bare = &c.sub;
                }
                if matches!(bare.kind(), HirKind::Literal(_) | HirKind::Class(_)) {
                    run.push(bare.clone());
                    through |= !std::ptr::eq(bare, p);
                    continue;
                }
                if small_part(p) {
                    run.push(p.clone());
                    through = true;
                    continue;
                }
                if through && run.len() > 1 {
                    sets.extend(one(&Hir::concat(std::mem::take(&mut run))));
                }
                run.clear();
                through = false;
            }
            sets
        }
        HirKind::Alternation(branches) => {
            let per: Vec<Vec<LitSet>> = branches.iter().map(required_sets).collect();
            let most = per.iter().map(Vec::len).max().unwrap_or(0);
            if per.iter().any(Vec::is_empty) {
                return Vec::new();
            }
            (0..most)
                .map(|j| {
                    per.iter()
                        .flat_map(|sets| sets[j.min(sets.len() - 1)].iter().cloned())
                        .collect()
                })
                .collect()
        }
        HirKind::Capture(c) => required_sets(&c.sub),
        HirKind::Repetition(r) if r.min >= 1 => required_sets(&r.sub),
        HirKind::Literal(_) | HirKind::Class(_) => one(h),
        _ => Vec::new(),
    }
}

/// A few short literals, one of them or none (`(ftp)?`, `(\+|-)`, `(opened|closed)`): what
/// a run of literals may go on through.
fn small_part(h: &Hir) -> bool {
    fn literals(h: &Hir) -> bool {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => b.len() <= 16,
            HirKind::Capture(c) => literals(&c.sub),
            HirKind::Alternation(v) => v.len() <= 4 && v.iter().all(literals),
            _ => false,
        }
    }
    match h.kind() {
        HirKind::Repetition(r) => r.min == 0 && r.max == Some(1) && literals(&r.sub),
        HirKind::Capture(c) => small_part(&c.sub),
        HirKind::Alternation(_) => literals(h),
        _ => false,
    }
}

/// The gates of a rule whose literal search looks for `chosen`: its other required literal sets
/// (`PacketResponder \d+ for block blk_-?\d+ Interrupted`, found by "PacketResponder ", must also
/// hold " for block blk_" and " Interrupted"), best first.
pub(super) fn gates_of(h: &Hir, chosen: &[Vec<u8>]) -> Vec<Gate> {
    let inside_chosen = |l: &[u8]| {
        chosen
            .iter()
            .any(|c| contains_folded(c, &l.to_ascii_lowercase()))
    };
    let mut found: Vec<LitSet> = required_sets(h)
        .into_iter()
        .filter(|set| set.len() <= MAX_GATE_LITS)
        // A gate all of whose literals the chosen literal may hold tells nothing.
        .filter(|set| !set.iter().all(|(l, _)| inside_chosen(l)))
        .collect();
    let lens = |set: &LitSet| quality(&set.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());
    found.sort_by_cached_key(|set| std::cmp::Reverse(lens(set)));
    found.dedup();
    found.truncate(MAX_GATES);
    found
        .into_iter()
        .map(|set| {
            Gate(
                set.into_iter()
                    .map(|(l, ci)| {
                        if ci {
                            let rare = rarest_byte(&l);
                            GateLit::Folded(l.into(), rare)
                        } else {
                            GateLit::Exact(Box::new(memchr::memmem::Finder::new(&l).into_owned()))
                        }
                    })
                    .collect(),
            )
        })
        .collect()
}

/// At most how many bytes before the first place in a line where one of `needles` starts
/// a match of `h` starts (`None`: no bound found). Every match holds one of the needles; when
/// a needle lies inside a literal part of `h` whose parts before it are at most `d` bytes
/// long, the match starts at most `d` bytes (and the needle's offset in that part) before that
/// needle, which is at or after its first place; [`by_prefixes`] is the other bound, the
/// smaller one is kept.
/// PERF: a rule's automaton then starts there instead of at the line's start (`authentication
/// failure; .*user=root` in a sshd line: the 50 bytes before the literal were half of its
/// automaton's bytes; PERF.md "forty-seventh run").
pub(super) fn lead(h: &Hir, needles: &[Vec<u8>]) -> Option<usize> {
    fn of(h: &Hir, needle: &[u8]) -> Option<usize> {
        match h.kind() {
            HirKind::Capture(c) => of(&c.sub, needle),
            HirKind::Literal(hir::Literal(b)) => memchr::memmem::find(b, needle),
            HirKind::Concat(parts) => {
                let mut before = 0usize;
                for p in parts {
                    if let Some(d) = of(p, needle) {
                        return before.checked_add(d);
                    }
                    before = before.checked_add(p.properties().maximum_len()?)?;
                }
                None
            }
            _ => None,
        }
    }
    if needles.is_empty() {
        return None;
    }
    let walked = needles
        .iter()
        .try_fold(0, |most, n| Some(most.max(of(h, n)?)));
    match (walked, by_prefixes(h, needles)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// [`lead`] from the prefixes of `h`: every match starts with one of the literals of its
/// finite prefix set, so a needle in each of them bounds the lead at the most any needs
/// (`Failed (password|publickey) for \S+`, found by "Failed password for " and "Failed
/// publickey for ", has its literals at its start, in no one part). `None` when the set is
/// infinite or a prefix holds no needle. Compared exactly: a needle ignoring case is not
/// looked for in case variants (its rule has none of these prefixes then).
fn by_prefixes(h: &Hir, needles: &[Vec<u8>]) -> Option<usize> {
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_total(LEAD_PREFIXES)
        .extract(h);
    let prefixes = seq.literals()?;
    if prefixes.is_empty() {
        return None;
    }
    prefixes.iter().try_fold(0, |most, p| {
        let at = needles
            .iter()
            .filter_map(|n| memchr::memmem::find(p.as_bytes(), n))
            .min()?;
        Some(most.max(at))
    })
}

/// Most prefixes [`by_prefixes`] looks at.
const LEAD_PREFIXES: usize = 64;

/// Whether `h` matches exactly the lines that hold one of `needles` (compared ignoring ASCII
/// case when `ci`): then a literal hit is a match.
pub(super) fn is_plain(h: &Hir, needles: &[Vec<u8>], ci: bool) -> bool {
    fn literals<'h>(h: &'h Hir, out: &mut Vec<&'h [u8]>) -> bool {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => {
                out.push(b);
                true
            }
            HirKind::Capture(c) => literals(&c.sub, out),
            HirKind::Alternation(v) => v.iter().all(|c| literals(c, out)),
            _ => false,
        }
    }
    /// The lower-case string `h` matches ignoring ASCII case, and nothing else.
    fn folded(h: &Hir, out: &mut Vec<u8>) -> bool {
        match h.kind() {
            HirKind::Literal(hir::Literal(b)) => {
                out.extend_from_slice(b);
                !b.iter().any(u8::is_ascii_alphabetic)
            }
            HirKind::Class(Class::Bytes(c)) => match c.ranges() {
                [one] if one.start() == one.end() && !one.start().is_ascii_alphabetic() => {
                    out.push(one.start());
                    true
                }
                [up, low]
                    if up.start() == up.end()
                        && low.start() == low.end()
                        && up.start().is_ascii_uppercase()
                        && low.start() == up.start().to_ascii_lowercase() =>
                {
                    out.push(low.start());
                    true
                }
                _ => false,
            },
            HirKind::Capture(c) => folded(&c.sub, out),
            HirKind::Concat(v) => v.iter().all(|c| folded(c, out)),
            _ => false,
        }
    }
    if ci {
        let mut f = Vec::new();
        matches!(needles, [one] if folded(h, &mut f) && f == *one)
    } else {
        let mut lits = Vec::new();
        literals(h, &mut lits) && needles.iter().all(|n| lits.contains(&&n[..]))
    }
}

/// Whether `h` matches exactly the lines that start with its one literal `needles[0]`
/// (`^literal`, case-sensitive: `^` without `(?m)` is the line's start, as in PCRE).
/// PERF: such a rule is confirmed by a comparison instead of its automaton (a storm of `^STORM`
/// lines ran the automaton on every line).
pub(super) fn is_prefix(h: &Hir, needles: &[Vec<u8>], ci: bool) -> bool {
    fn bare(h: &Hir) -> &Hir {
        match h.kind() {
            HirKind::Capture(c) => bare(&c.sub),
            _ => h,
        }
    }
    let [one] = needles else {
        return false;
    };
    let HirKind::Concat(parts) = bare(h).kind() else {
        return false;
    };
    match parts.as_slice() {
        [start, lit] => {
            !ci && matches!(start.kind(), HirKind::Look(hir::Look::Start))
                && matches!(bare(lit).kind(), HirKind::Literal(hir::Literal(b)) if **b == **one)
        }
        _ => false,
    }
}

impl RuleSet {
    /// The literals the searches look for rule `r` by.
    fn literals_of(&self, r: u32) -> Vec<Vec<u8>> {
        let mut lits = Vec::new();
        for scan in [&self.lits, &self.short].into_iter().flatten() {
            lits.extend(scan.literals_of(r));
        }
        lits
    }

    /// The gates of rule `r` of `group`, made (at its first candidate line) with its lead.
    #[cold]
    pub(super) fn gates_made(&self, group: &Group, r: u32) -> Vec<Gate> {
        let (gates, lead) = self.prepare(group, r);
        if let Some(check) = self.checks.get(r as usize) {
            let _ = check.lead.set(lead);
        }
        gates
    }

    /// The lead of rule `r` of `group` (made at its first candidate line, with its gates).
    #[inline]
    pub(super) fn lead_of(&self, group: &Group, r: u32) -> Option<usize> {
        let check = self.checks.get(r as usize)?;
        *check.lead.get_or_init(|| {
            let (gates, lead) = self.prepare(group, r);
            let _ = check.gates.set(gates);
            lead
        })
    }

    /// Rule `r`'s gates, and its [`lead`] in its existence form (the form its automaton runs).
    fn prepare(&self, group: &Group, r: u32) -> (Vec<Gate>, Option<usize>) {
        let lits = self.literals_of(r);
        if lits.is_empty() {
            return (Vec::new(), None);
        }
        // (The group's trees are parsed here at the latest: after the cheap check above.)
        let Some(h) = group
            .rules
            .iter()
            .position(|&x| x == r)
            .and_then(|i| group.hirs().get(i))
        else {
            return (Vec::new(), None);
        };
        (gates_of(h, &lits), lead(&syntax::for_existence(h), &lits))
    }
}
