//! Bodies of the fuzz targets, shared by `fuzz/` (cargo-fuzz) and `tests/integration/fuzz_replay.rs`, which
//! replays every input kept in `fuzz/regressions/` as an ordinary test.

#![allow(dead_code)]

use crate::oracle;

use logalarm::testing::CollectSink;
use logalarm::Pipeline;
use logalarm::RuleSet;

/// Config parsing: the bytes are a NUL-separated argument list, and the same bytes as an ini
/// file. Any result is fine; a panic is not. Errors must be one line.
pub(crate) fn config(data: &[u8]) {
    // `--alarm-socket` datagrams come from any local process.
    let _ = logalarm::testing::split_raise(data);
    let args: Vec<std::ffi::OsString> = data
        .split(|&b| b == 0)
        .map(|a| <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a).to_os_string())
        // Never read files named by the fuzzer.
        .filter(|a| !reads_files(&a.to_string_lossy()))
        .collect();
    if let Ok(c) = logalarm::parse_args(args) {
        match logalarm::build_plan(&c) {
            // The alarms' decisions (captures, templates, keys) over the input's own lines.
            Ok(plan) => {
                let lines: Vec<&[u8]> = data.split(|&b| b == 0 || b == b'\n').collect();
                let _ = logalarm::testing::decide_all(&plan, &lines);
                // The thrash probe, which logalarm runs on a thread after start-up.
                let _ = logalarm::testing::probe_warnings(&plan);
            }
            Err(e) => check(Some(e)),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if !reads_files(text) {
            match logalarm::parse_ini_str(text, "fuzz.ini") {
                Ok(c) => check(logalarm::build_plan(&c).err()),
                Err(e) => check(Some(e)),
            }
        }
    }
}

/// Whether the fuzzer's text could name a file to read as configuration (`ini`, `include`,
/// `inherit`, `for-readline`, `for-glob`).
fn reads_files(text: &str) -> bool {
    ["ini", "include", "inherit", "readline", "glob"]
        .iter()
        .any(|k| text.contains(k))
}

fn check(e: Option<logalarm::ConfigError>) {
    if let Some(e) = e {
        let s = e.to_string();
        assert!(!s.is_empty());
    }
}

/// Rule sets the pipeline target picks from (first byte).
const RULESETS: &[&[(&str, &[u32], bool)]] = &[
    &[("ERROR", &[0], false)],
    &[("^a", &[0], false), ("b$", &[1], false), ("", &[2], true)],
    &[
        ("a\\s*b", &[0, 1], false),
        ("(?i)ab", &[1], true),
        ("\\bx\\d+", &[2], false),
    ],
    &[
        ("[^a]{2,}", &[0], false),
        ("\\x00|\\xff", &[1], false),
        ("\\Aa.*\\z", &[2], false),
    ],
    &[("", &[0], false)],
    // Every rule has a literal: the literal prefilter replaces the DFA. Ten of 6 bytes or
    // more: nibble tables in eight groups (Teddy) search them, with AVX2.
    &[
        ("ERROR \\d+", &[0], false),
        ("(?i)fail", &[1], false),
        ("\\bab\\x00", &[2], true),
        ("kernel panic", &[0], false),
        ("(?i)segfault at", &[1], false),
        ("Out of memory", &[2], false),
        ("BREAK-IN", &[0, 1], false),
        ("Connection refused", &[1], true),
        ("java\\.net\\.\\w+", &[2], false),
        ("listen queue", &[0], false),
        ("(?i)machine check", &[1], false),
        ("QUEUE_FULL", &[2], false),
    ],
    // No rule has a literal, each a rare run of byte classes: class windows (with AVX2) find
    // the candidate lines.
    &[
        (
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]+",
            &[0],
            false,
        ),
        ("\\b[A-Z][A-Z0-9_]{7,}\\b", &[1], false),
        ("(?i)x[0-9]y", &[2], true),
    ],
];

const BUFSIZES: [usize; 4] = [8192, 1, 3, 7];

type Compiled = (RuleSet, Vec<oracle::OracleRule>);

/// Every rule set at every bufsize, compiled once per process (fuzzing runs millions of inputs).
fn compiled() -> &'static Vec<Vec<Compiled>> {
    static CELL: std::sync::OnceLock<Vec<Vec<Compiled>>> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        RULESETS
            .iter()
            .map(|rules| {
                BUFSIZES
                    .iter()
                    .map(|&bufsize| {
                        let set =
                            RuleSet::from_triples(rules, 3, bufsize).expect("fixed rules compile");
                        let orules = rules
                            .iter()
                            .map(|(p, a, n)| {
                                oracle::compile(p, a.to_vec(), *n).expect("oracle compiles")
                            })
                            .collect();
                        (set, orules)
                    })
                    .collect()
            })
            .collect()
    })
}

/// The pipeline: arbitrary bytes in arbitrary chunks → no panic, output identical to input,
/// alarms equal to the naive oracle's.
pub(crate) fn pipeline(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let bufsize = BUFSIZES[data[1] as usize % 4];
    let cap = [16usize, 64, 1 << 16][data[2] as usize % 3];
    let chunk_seed = data[1] as usize;
    let input = &data[3..];
    let (set, orules) = &compiled()[data[0] as usize % RULESETS.len()][data[1] as usize % 4];
    let mut p = Pipeline::new(set.matcher(), cap);
    let mut s = CollectSink::default();
    let mut pos = 0;
    let mut i = 0;
    while pos < input.len() {
        let n = ((i * 31 + chunk_seed) % 23 + 1).min(input.len() - pos);
        // Copied into the roll buffer (child pipes, tails) or processed in place (standard
        // input's reader thread), mixed so every transition between the two is exercised.
        if (i + data[2] as usize / 3).is_multiple_of(3) {
            p.feed(&input[pos..pos + n], &mut s)
        } else {
            p.feed_chunk(&input[pos..pos + n], &mut s)
        }
        .expect("collect sink never fails");
        pos += n;
        i += 1;
    }
    p.finish(&mut s).expect("collect sink never fails");
    assert!(s.out == input, "output differs from input");
    let expected = oracle::run(orules, input, bufsize);
    let mut got: Vec<(Vec<u8>, Vec<u32>)> = Vec::new();
    let mut last_line_end = usize::MAX;
    for (k, (a, m)) in s.alarms.iter().enumerate() {
        let same_line = k > 0
            && last_line_end == k - 1
            && got
                .last()
                .is_some_and(|(lm, r)| lm == m && r.last().is_some_and(|l| l < a));
        if same_line {
            if let Some((_, r)) = got.last_mut() {
                r.push(*a);
            }
        } else {
            got.push((m.clone(), vec![*a]));
        }
        last_line_end = k;
    }
    assert_eq!(got, expected);
}
