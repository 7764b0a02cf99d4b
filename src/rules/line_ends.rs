//! Rules anchored at a line's start or end, checked there: the DFA part's candidate lines of
//! rules that have neither literals nor rare windows of byte classes.
//!
//! Role: a rule every match of which starts at the line's start (`^apache$|^mysql$|…`) or ends
//! at its end (` [0-9]{3,4}: $`) needs no search through the line: an automaton anchored at the
//! line's start (forward) or at its end (reverse) decides it, and for most lines it stops after
//! a byte or two. Without this, one such rule sent the DFA part's automaton over every byte of
//! the stream (about 2 ns a byte; sagan-rules' 2,052 rules: 46 % of the run, PERF.md
//! "thirty-ninth run").
//!
//! Invariants: [`LineEnds::matches`] says exactly whether one of its rules matches a line's
//! text (the rules as the exact automaton has them, in their existence form): never a false
//! "no" (an automaton that gives up says "yes" and confirmation decides); one automaton per
//! side for all the rules, so a line costs two runs at most whatever the rule count.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, WhichCaptures};
use regex_automata::{Anchored, Input};
use regex_syntax::hir::{Hir, Look};

/// Which end of every match of a rule is an end of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Start,
    End,
}

/// The side of the line every match of `h` (a rule as matched on one line's text, which holds
/// no `\n`) is anchored at, preferring the start (a forward run is the cheaper).
pub(super) fn side(h: &Hir) -> Option<Side> {
    let props = h.properties();
    let (pre, suf) = (props.look_set_prefix(), props.look_set_suffix());
    if pre.contains(Look::Start) || pre.contains(Look::StartLF) {
        Some(Side::Start)
    } else if suf.contains(Look::End) || suf.contains(Look::EndLF) {
        Some(Side::End)
    } else {
        None
    }
}

/// The anchored automata of the rules of each side, each behind its [`Screen`].
#[derive(Debug)]
pub(super) struct LineEnds {
    fwd: Option<(DFA, Screen)>,
    rev: Option<(DFA, Screen)>,
}

/// What a line needs for one side's automaton to be worth running, known from the automaton
/// and the rules before the first line: the byte at that side's end of the line, and the
/// line's length.
///
/// PERF: most lines fail it, and a table look-up and two compares replace a run of the
/// automaton (about 100 instructions a line of sagan-rules' 553,165 per 64 MiB, 11 % of the
/// run: PERF.md "forty-ninth run"). `^apache$|^mysql$|…` matches lines of at most 7 bytes;
/// ` [0-9]{3,4}: $` lines ending in a space.
///
/// Invariant: a line it refuses matches none of the side's rules (never a false "no").
#[derive(Debug)]
struct Screen {
    /// `edge[b]`: whether a match can be at a line whose byte at this side's end is `b` (a
    /// byte whose transition out of the anchored start state is not to the dead state).
    edge: [bool; 256],
    /// The shortest line a rule of the side can match.
    min: usize,
    /// The longest (`usize::MAX` unless every rule is anchored at both ends and bounded).
    max: usize,
}

impl Screen {
    fn of(dfa: &DFA, hirs: &[&Hir], reverse: bool) -> Screen {
        let mut edge = [true; 256];
        let mut cache = dfa.create_cache();
        let empty = Input::new(&b""[..]).anchored(Anchored::Yes);
        let start = if reverse {
            dfa.start_state_reverse(&mut cache, &empty)
        } else {
            dfa.start_state_forward(&mut cache, &empty)
        };
        if let Ok(start) = start {
            for b in 0..=255u8 {
                // A state that quits (a Unicode word boundary beside a non-ASCII byte), that
                // matches (the empty string) or that the cache could not hold lets it by.
                if matches!(dfa.next_state(&mut cache, start, b), Ok(s) if s.is_dead()) {
                    edge[usize::from(b)] = false;
                }
            }
        }
        let both_ends = |h: &Hir| {
            let p = h.properties();
            let (pre, suf) = (p.look_set_prefix(), p.look_set_suffix());
            (pre.contains(Look::Start) || pre.contains(Look::StartLF))
                && (suf.contains(Look::End) || suf.contains(Look::EndLF))
        };
        let min = hirs
            .iter()
            .map(|h| h.properties().minimum_len().unwrap_or(usize::MAX))
            .min()
            .unwrap_or(0);
        let max = hirs
            .iter()
            .map(|h| match h.properties().maximum_len() {
                Some(n) if both_ends(h) => n,
                _ => usize::MAX,
            })
            .max()
            .unwrap_or(usize::MAX);
        Screen { edge, min, max }
    }

    /// Whether a line whose text is `text` may match (`edge_byte`: its byte at this side's
    /// end, None when it is empty).
    #[inline]
    fn admits(&self, len: usize, edge_byte: Option<u8>) -> bool {
        len >= self.min && len <= self.max && edge_byte.is_none_or(|b| self.edge[usize::from(b)])
    }
}

/// A matcher's caches for [`LineEnds`].
#[derive(Debug, Default)]
pub(super) struct LineEndsCache {
    fwd: Option<Cache>,
    rev: Option<Cache>,
}

fn automaton(hirs: &[&Hir], reverse: bool) -> Option<DFA> {
    if hirs.is_empty() {
        return None;
    }
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .utf8(false)
                .reverse(reverse)
                .which_captures(WhichCaptures::None)
                .nfa_size_limit(Some(256 << 20)),
        )
        .build_many_from_hir(hirs)
        .ok()?;
    DFA::builder()
        .configure(DFA::config().unicode_word_boundary(true))
        .build_from_nfa(nfa)
        .ok()
}

impl LineEnds {
    /// The automata of `rules` (each with its [`side`]); None when one cannot be built.
    pub(super) fn new(rules: &[(&Hir, Side)]) -> Option<LineEnds> {
        let of = |s: Side| -> Vec<&Hir> {
            rules
                .iter()
                .filter(|(_, side)| *side == s)
                .map(|(h, _)| *h)
                .collect()
        };
        let (starts, ends) = (of(Side::Start), of(Side::End));
        let fwd = automaton(&starts, false).map(|a| {
            let screen = Screen::of(&a, &starts, false);
            (a, screen)
        });
        let rev = automaton(&ends, true).map(|a| {
            let screen = Screen::of(&a, &ends, true);
            (a, screen)
        });
        // Each side built that has rules.
        let built = fwd.is_some() != starts.is_empty() && rev.is_some() != ends.is_empty();
        (built && !rules.is_empty()).then_some(LineEnds { fwd, rev })
    }

    /// Whether one of the rules matches `text` (a line's text: no `\n` in it).
    #[inline]
    pub(super) fn matches(&self, text: &[u8], cache: &mut LineEndsCache) -> bool {
        let input = Input::new(text).anchored(Anchored::Yes).earliest(true);
        let edge = text.first().copied();
        if let Some((fwd, _)) = self
            .fwd
            .as_ref()
            .filter(|(_, s)| s.admits(text.len(), edge))
        {
            let c = cache.fwd.get_or_insert_with(|| fwd.create_cache());
            // A run that gives up (a Unicode word boundary beside a non-ASCII byte) is a
            // candidate: the exact automaton decides.
            if !matches!(fwd.try_search_fwd(c, &input), Ok(None)) {
                return true;
            }
        }
        let edge = text.last().copied();
        if let Some((rev, _)) = self
            .rev
            .as_ref()
            .filter(|(_, s)| s.admits(text.len(), edge))
        {
            let c = cache.rev.get_or_insert_with(|| rev.create_cache());
            if !matches!(rev.try_search_rev(c, &input), Ok(None)) {
                return true;
            }
        }
        false
    }

    /// The start of the first line in `buf[pos..to]` (`pos` at a line start) one of the rules
    /// matches, each line taken as confirmation takes it (cut to `bufsize`, without its
    /// terminator).
    pub(super) fn find(
        &self,
        buf: &[u8],
        pos: usize,
        to: usize,
        bufsize: usize,
        cache: &mut LineEndsCache,
    ) -> Option<usize> {
        let mut start = pos;
        while start < to {
            let end = crate::litscan::find_newline(&buf[start..to]).map_or(to, |i| start + i + 1);
            let (_, text) = super::matcher::cut(&buf[start..end], bufsize);
            if self.matches(text, cache) {
                return Some(start);
            }
            start = end;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(rules: &[&str]) -> LineEnds {
        let hirs: Vec<Hir> = rules
            .iter()
            .map(|r| crate::rules::parse_regex(r).map(|h| super::super::syntax::for_existence(&h)))
            .collect::<Result<_, _>>()
            .unwrap();
        let sided: Vec<(&Hir, Side)> = hirs.iter().map(|h| (h, side(h).unwrap())).collect();
        LineEnds::new(&sided).unwrap()
    }

    #[test]
    fn sides_of_anchored_rules() {
        let side_of = |r: &str| side(&crate::rules::parse_regex(r).unwrap());
        assert_eq!(side_of("^apache$|^mysql$"), Some(Side::Start));
        assert_eq!(side_of(r" [0-9][0-9][0-9][0-9]?: $"), Some(Side::End));
        assert_eq!(side_of(r"(?m)^x|^y"), Some(Side::Start));
        assert_eq!(side_of("^a|b$"), None);
        assert_eq!(side_of("(?:^)?a$"), Some(Side::End));
        assert_eq!(side_of("a"), None);
    }

    #[test]
    fn anchored_rules_agree_with_the_rule_on_each_line() {
        let rules = [
            "^apache$|^mysql$|^lp$",
            r" [0-9][0-9][0-9][0-9]?: $",
            r"^\w+ \d+ error",
            r"(?i)failed$",
            r"\bdone\b$",
            r"^(?:ab)?$",
            r"^x$|^lp ?$",
        ];
        let mut lines: Vec<Vec<u8>> = [
            "apache",
            "mysql",
            "lp",
            "lpx",
            "xlp",
            " apache",
            "port 8080: ",
            "port 808: ",
            "port 80: ",
            "port 8080:",
            "port 8080: x",
            "kernel 12 error here",
            " kernel 12 error",
            "Login FAILED",
            "failed later",
            "all done",
            "all undone",
            "done.",
            "",
            "\u{e9}done",
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        let mut next = crate::rules::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            // Lines of pieces of the rules and of other text, so that some match.
            let pieces: [&[u8]; 17] = [
                b"apache",
                b"mysql",
                b"lp",
                b" ",
                b"8080",
                b"80",
                b": ",
                b"error",
                b"FAILED",
                b"failed",
                b"done",
                b"\xe9",
                b"x",
                b"12",
                b"ab",
                b" 808: ",
                b"x 12 error",
            ];
            let len = (next() % 6) as usize;
            let line: Vec<u8> = (0..len)
                .flat_map(|_| pieces[(next() % 17) as usize].iter().copied())
                .collect();
            lines.push(line);
        }
        // All the rules together, and each alone (where the screens of a side are its own:
        // `^apache$|…` admits lines of 2 to 6 bytes beginning with a, m or l).
        let mut sets: Vec<Vec<&str>> = vec![rules.to_vec()];
        sets.extend(rules.iter().map(|r| vec![*r]));
        for set in &sets {
            let e = ends(set);
            let regexes: Vec<regex::bytes::Regex> = set
                .iter()
                .map(|r| regex::bytes::Regex::new(&format!("(?-u){r}")).unwrap())
                .collect();
            let mut cache = LineEndsCache::default();
            let mut hits = 0;
            for l in &lines {
                let want = regexes.iter().any(|r| r.is_match(l));
                let got = e.matches(l, &mut cache);
                // Never a false "no"; a "yes" only where a rule matches (or a run gave up).
                let line = String::from_utf8_lossy(l);
                assert!(got || !want, "{set:?} missed {line:?}");
                assert!(!got || want, "{set:?} false {line:?}");
                hits += usize::from(want);
            }
            assert!(hits > 20, "{set:?}: too few matching lines to tell: {hits}");
        }
    }

    #[test]
    fn screens_refuse_lines_by_their_edge_byte_and_length() {
        let e = ends(&["^apache$|^mysql$|^lp$", r" [0-9][0-9][0-9][0-9]?: $"]);
        let (fwd, rev) = (&e.fwd.as_ref().unwrap().1, &e.rev.as_ref().unwrap().1);
        assert_eq!((fwd.min, fwd.max), (2, 6));
        let firsts: Vec<u8> = (0..=255u8).filter(|&b| fwd.edge[usize::from(b)]).collect();
        assert_eq!(firsts, b"alm");
        assert_eq!((rev.min, rev.max), (6, usize::MAX));
        let lasts: Vec<u8> = (0..=255u8).filter(|&b| rev.edge[usize::from(b)]).collect();
        assert_eq!(lasts, b" ");
        // A rule that matches the empty line lets every line by.
        let e = ends(&[r"^(?:ab)?$"]);
        let fwd = &e.fwd.as_ref().unwrap().1;
        assert_eq!((fwd.min, fwd.max), (0, 2));
        assert!(fwd.edge.iter().filter(|&&b| b).count() >= 1);
    }
}
