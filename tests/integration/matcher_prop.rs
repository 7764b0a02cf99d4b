//! Property tests: the one-pass matcher equals the naive per-line, per-rule oracle, and the
//! pipeline gives identical output and alarms whatever the read chunking.

use crate::oracle;

use logalarm::testing::CollectSink;
use logalarm::Pipeline;
use logalarm::{Rule, RuleSet};
use proptest::prelude::*;

/// Regex pieces that exercise anchors, classes, alternation, repetition, `\s` (which contains
/// `\n`), word boundaries, case folding and empty patterns.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("ab".to_string()),
        Just("^".to_string()),
        Just("$".to_string()),
        Just("\\d+".to_string()),
        Just("\\s".to_string()),
        Just("[^a]".to_string()),
        Just(".".to_string()),
        Just(".*".to_string()),
        Just("(a|b\\d)".to_string()),
        Just("\\b".to_string()),
        Just("(?i)AB".to_string()),
        Just("x?".to_string()),
        Just("\\r".to_string()),
        Just("\\x00".to_string()),
        Just("\\xff".to_string()),
        Just("\\A".to_string()),
        Just("\\z".to_string()),
    ]
}

fn rule() -> impl Strategy<Value = (String, Vec<u32>, bool)> {
    (
        proptest::collection::vec(piece(), 0..4).prop_map(|v| v.concat()),
        proptest::collection::vec(0u32..4, 1..3),
        proptest::bool::weighted(0.25),
    )
}

/// Bytes, and now and then a piece of the long literals of [`literal_rule`] (in either case), so
/// the literal-first search has something to find.
fn input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            8 => prop_oneof![
                Just(b'a'),
                Just(b'b'),
                Just(b'A'),
                Just(b'1'),
                Just(b' '),
                Just(b'\n'),
                Just(b'\n'),
                Just(b'\r'),
                Just(0u8),
                Just(0xffu8),
                Just(b'['),
            ]
            .prop_map(|b| vec![b]),
            1 => prop_oneof![
                Just(&b"aab a1b"[..]),
                Just(&b"AAB A1B"[..]),
                Just(&b"ba1 1ab"[..]),
                Just(&b"b a b a1"[..]),
                Just(&b"aBa BaB"[..]),
                Just(&b"a\x00b a\xffb"[..]),
                Just(&b"aab a"[..]),
            ]
            .prop_map(|b| b.to_vec()),
        ],
        0..120,
    )
    .prop_map(|v| v.concat())
}

fn run(set: &RuleSet, input: &[u8], chunks: &[usize], cap: usize) -> CollectSink {
    run_as(set, input, chunks, cap, false)
}

/// `in_place`: chunks go through `feed_chunk` (standard input's path) instead of `feed`.
fn run_as(
    set: &RuleSet,
    input: &[u8],
    chunks: &[usize],
    cap: usize,
    in_place: bool,
) -> CollectSink {
    let mut p = Pipeline::new(set.matcher(), cap);
    let mut s = CollectSink::default();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        if in_place {
            p.feed_chunk(&rest[..n], &mut s).unwrap();
        } else {
            p.feed(&rest[..n], &mut s).unwrap();
        }
        rest = &rest[n..];
        i += 1;
    }
    p.finish(&mut s).unwrap();
    s
}

/// Rules that all carry a literal: of 7+ bytes (the literal-first search takes them), of 6
/// (taken too when few) or of 3 (the DFA part takes them), each compared exactly or ignoring case; some are plain literals
/// (a hit is a match), some have more literals after the first (gates).
fn literal_rule() -> impl Strategy<Value = (String, Vec<u32>, bool)> {
    (
        prop_oneof![Just("^"), Just(""), Just("\\b"), Just("(?i)"), Just("\\d*")],
        prop_oneof![
            Just("aab"),
            Just("ab1"),
            Just("b a"),
            Just("AbA"),
            Just("(aab|ba1)"),
            Just("a\\x00b"),
            Just("aab a1b"),
            Just("(aab a1b|ba1 1ab)"),
            Just("b a b a1"),
            Just("aBa BaB"),
            Just("a\\x00b a\\xffb"),
            Just("aab a[1b]b"),
            Just("aab a1"),
            Just("(ba1 1a|b a b)"),
        ],
        // The later literals are the gates checked before a rule's automaton runs.
        prop_oneof![
            Just(""),
            Just("$"),
            Just("\\d+"),
            Just(".*b"),
            Just("\\s"),
            Just(".*ba1 1ab"),
            Just("\\d*(?i:aba)"),
            Just(".*(aab|b a)"),
            Just(" ?a1b"),
        ],
        proptest::collection::vec(0u32..4, 1..3),
        proptest::bool::weighted(0.25),
    )
        .prop_map(|(a, b, c, al, n)| (format!("{a}{b}{c}"), al, n))
}

/// `^literal` rules only, of 1..=5 bytes (the DFA part then finds a line starting with one
/// without a search), and lines that often start with them, one after another.
fn prefix_rule() -> impl Strategy<Value = (String, Vec<u32>, bool)> {
    (
        prop_oneof![
            Just("a"),
            Just("ab"),
            Just("aab"),
            Just("b a"),
            Just("STORM"),
            Just("a\\x00b")
        ],
        proptest::collection::vec(0u32..4, 1..3),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(l, al, n)| (format!("^{l}"), al, n))
}

fn prefix_input() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(&b"aab x\n"[..]),
            Just(&b"STORM y\n"[..]),
            Just(&b"ab\n"[..]),
            Just(&b"\n"[..]),
            Just(&b"x aab STORM\n"[..]),
            Just(&b"b a\x00b\n"[..]),
            Just(&b"a"[..]),
            Just(&b"STOR"[..]),
        ]
        .prop_map(|b| b.to_vec()),
        0..60,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn prefix_rules_equal_oracle(
        rules in proptest::collection::vec(prefix_rule(), 1..5),
        input in prefix_input(),
        chunks in proptest::collection::vec(1usize..40, 1..5),
        bufsize in prop_oneof![Just(8192usize), 1usize..12],
    ) {
        check(rules, input, chunks, bufsize)?;
    }

    #[test]
    fn one_pass_equals_oracle(
        rules in proptest::collection::vec(rule(), 1..6),
        input in input(),
        chunks in proptest::collection::vec(1usize..40, 1..5),
        bufsize in prop_oneof![Just(8192usize), 1usize..12],
    ) {
        check(rules, input, chunks, bufsize)?;
    }

    #[test]
    fn literal_prefilter_equals_oracle(
        rules in proptest::collection::vec(literal_rule(), 1..6),
        input in input(),
        chunks in proptest::collection::vec(1usize..40, 1..5),
        bufsize in prop_oneof![Just(8192usize), 1usize..12],
    ) {
        check(rules, input, chunks, bufsize)?;
    }
}

fn check(
    rules: Vec<(String, Vec<u32>, bool)>,
    input: Vec<u8>,
    chunks: Vec<usize>,
    bufsize: usize,
) -> Result<(), TestCaseError> {
    {
        let mut oracle_rules = Vec::new();
        let mut pats = Vec::new();
        for (p, a, n) in &rules {
            let Some(o) = oracle::compile(p, a.clone(), *n) else {
                return Ok(());
            };
            oracle_rules.push(o);
            pats.push((
                p.as_str(),
                Rule {
                    alarms: a.clone(),
                    negate: *n,
                },
            ));
        }
        let set = RuleSet::new(&pats, 4, bufsize).unwrap();
        let expected = oracle::run(&oracle_rules, &input, bufsize);
        // Whole buffer (big capacity), then random chunks into a small buffer.
        let whole = run(&set, &input, &[input.len().max(1)], 1 << 16);
        let chunked = run(&set, &input, &chunks, 64);
        let bytewise = run(&set, &input, &[1], 64);
        prop_assert_eq!(&whole.out, &input);
        prop_assert_eq!(&chunked, &whole);
        prop_assert_eq!(&bytewise, &whole);
        let in_place = run_as(&set, &input, &chunks, 64, true);
        prop_assert_eq!(&in_place, &whole);
        let in_place_big = run_as(&set, &input, &chunks, 1 << 16, true);
        prop_assert_eq!(&in_place_big, &whole);
        let mut got: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
        for (a, m) in &whole.alarms {
            match got.last_mut() {
                // Consecutive alarms of one line share its message slice; lines are distinct
                // events even when equal, so group only within one line's run of ranks.
                Some((lm, ranks)) if lm == m && ranks.last().is_some_and(|l| l < a) => {
                    ranks.push(*a)
                }
                _ => got.push((m.clone(), vec![*a])),
            }
        }
        prop_assert_eq!(got, expected);
    }
    Ok(())
}

/// Pieces of PCRE rules (uWSGI's dialect): what the translation rewrites and what PCRE
/// confirms. (`{,n}` is left out: PCRE1, which uWSGI links, reads it as text, newer PCRE2 as a
/// quantifier; the conformance suite against the real uWSGI covers it.)
fn pcre_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("<".to_string()),
        Just("\\<".to_string()),
        Just("\\Qa[\\E".to_string()),
        Just("\\x61".to_string()),
        Just("\\141".to_string()),
        Just("\\h".to_string()),
        Just("\\N".to_string()),
        Just("[[:digit:]a]".to_string()),
        Just("[[b]".to_string()),
        Just("[]a]".to_string()),
        Just("[^a]".to_string()),
        Just("{".to_string()),
        Just("a{2}".to_string()),
        Just("b*".to_string()),
        Just("a++".to_string()),
        Just("(?=a)".to_string()),
        Just("(?!b)".to_string()),
        Just("(?<=a)".to_string()),
        Just("(a|b)\\1".to_string()),
        Just("(?>a+)".to_string()),
        Just("(?|a|b)".to_string()),
        Just("^".to_string()),
        Just("$".to_string()),
        Just("\\Z".to_string()),
        Just(".".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A rule in uWSGI's dialect, run by logalarm (translation, one pass, PCRE confirmation),
    /// raises its alarm on exactly the lines PCRE alone matches. Both see the line without its
    /// terminator: that is logalarm's unit of matching by the specification (uWSGI matches
    /// read() chunks with their `\n`, so `[^a]` also matches its newline there).
    #[test]
    fn pcre_rules_match_what_pcre_matches(
        pieces in proptest::collection::vec(pcre_piece(), 1..5),
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'b'), Just(b'<'), Just(b'['), Just(b']'),
                            Just(b'{'), Just(b'1'), Just(b' '), Just(b'\t'), Just(0xa0u8)],
                0..8),
            1..6),
    ) {
        same_lines_as_pcre(&pieces.concat(), &lines)?;
    }

    /// One-byte look-behinds: dropped (no PCRE) where what comes before them always passes,
    /// confirmed by PCRE elsewhere; either way the lines PCRE alone matches (the fail2ban
    /// `<HOST>` shape `(?:a::?|::){1,7}(?:a|(?<=:):)` among the pieces).
    #[test]
    fn look_behinds_match_what_pcre_matches(
        pieces in proptest::collection::vec(prop_oneof![
            Just("a"), Just(":"), Just("b"), Just("a+"), Just(":?"), Just("[a:]"), Just("[^:]"),
            Just("(?<=:)"), Just("(?<!:)"), Just("(?<=[a:])"), Just("(?<![ab])"), Just("(?<=a)"),
            Just("(?i)(?<=[aA])"), Just("(?i:A)"), Just("(?:a::?|::){1,3}"), Just("(?:a|(?<=:):)"),
            Just("(?:b|:)+"), Just("(?:a|)"), Just("^"), Just("(?=(?<=a))"), Just("(?:(?<=b)|:)"),
        ], 1..6),
        lines in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![Just(b'a'), Just(b'A'), Just(b'b'), Just(b':'), Just(b' ')], 0..10),
            1..8),
    ) {
        same_lines_as_pcre(&pieces.concat(), &lines)?;
    }
}

/// logalarm with `rule` as its one `log-alarm` raises the alarm on exactly the lines of `lines`
/// that PCRE alone matches (a rule PCRE refuses is skipped).
fn same_lines_as_pcre(rule: &str, lines: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let Ok(pcre) = pcre2::bytes::Regex::new(rule) else {
        return Ok(());
    };
    let config = logalarm::parse_args(
        ["--alarm", "a log:", "--log-alarm", &format!("a {rule}")]
            .iter()
            .map(Into::into),
    )
    .unwrap();
    let plan =
        logalarm::build_plan(&config).map_err(|e| TestCaseError::fail(format!("{rule}: {e}")))?;
    let mut p = Pipeline::new(plan.rules().matcher(), 4096);
    let mut s = CollectSink::default();
    let mut input = Vec::new();
    for l in lines {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    p.feed(&input, &mut s).unwrap();
    p.finish(&mut s).unwrap();
    let got: Vec<Vec<u8>> = s.alarms.into_iter().map(|(_, m)| m).collect();
    let want: Vec<Vec<u8>> = lines
        .iter()
        .filter(|l| pcre.is_match(l).unwrap_or(false))
        .map(|l| {
            let mut m = l.clone();
            m.push(b'\n');
            m
        })
        .collect();
    prop_assert_eq!(got, want, "rule {}", rule);
    Ok(())
}
