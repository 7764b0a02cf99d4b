//! Scenario files (`tests/data/*.toml`): a configuration, an input and the alarms it must raise.
//!
//! Each scenario runs twice: through the real binary end to end (alarms are `log:` alarms, read
//! back from the log output, so anti-flood, truncation and the dispatcher are the real ones), and
//! through the library pipeline fed whole, byte by byte and in random chunks, which must all raise
//! identical alarm events and pass identical bytes.

use std::io::Write;
use std::process::{Command, Stdio};

use logalarm::testing::CollectSink;
use logalarm::Pipeline;

#[derive(serde::Deserialize)]
struct Scenario {
    description: String,
    args: Vec<String>,
    #[serde(default)]
    ini: Option<String>,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    input_hex: Option<String>,
    #[serde(default)]
    expect: Vec<String>,
    #[serde(default)]
    expect_hex: Vec<String>,
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Alarm lines of the output (`<date> - ALARM: REST`) → REST; and the output without them.
fn split_output(out: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut alarms = Vec::new();
    let mut rest = Vec::new();
    for line in out.split_inclusive(|&b| b == b'\n') {
        match line.windows(10).position(|w| w == b" - ALARM: ") {
            Some(p) if p == 24 => {
                let body = &line[p + 10..];
                alarms.push(body.strip_suffix(b"\n").unwrap_or(body).to_vec());
            }
            _ => rest.extend_from_slice(line),
        }
    }
    (alarms, rest)
}

fn run_one(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let sc: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dir = tempfile::tempdir().unwrap();
    let mut args = sc.args.clone();
    if let Some(ini) = &sc.ini {
        let p = dir.path().join("scenario.ini");
        std::fs::write(&p, ini).unwrap();
        args.push("--ini".into());
        args.push(p.to_str().unwrap().into());
    }
    let input = match (&sc.input, &sc.input_hex) {
        (Some(s), _) => s.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h),
        _ => Vec::new(),
    };
    let mut expect: Vec<Vec<u8>> = sc.expect.iter().map(|s| s.as_bytes().to_vec()).collect();
    expect.extend(sc.expect_hex.iter().map(|h| unhex(h)));

    // 1. The real binary.
    let mut child = Command::new(env!("CARGO_BIN_EXE_logalarm"))
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&feed));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}: {}\nstderr: {}",
        path.display(),
        sc.description,
        String::from_utf8_lossy(&out.stderr)
    );
    let (alarms, rest) = split_output(&out.stdout);
    let show = |v: &[Vec<u8>]| {
        v.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        show(&alarms),
        show(&expect),
        "{}: {}",
        path.display(),
        sc.description
    );
    let mut want_rest = input.clone();
    if !input.is_empty() && !input.ends_with(b"\n") && !alarms.is_empty() {
        want_rest.push(b'\n');
    }
    assert_eq!(rest, want_rest, "{}: pass-through differs", path.display());

    // 2. The library pipeline under three chunkings.
    let config = logalarm::parse_args(args.iter().map(Into::into)).unwrap();
    let plan = logalarm::build_plan(&config).unwrap();
    let run = |chunk: &dyn Fn(usize) -> usize| {
        let mut p = Pipeline::new(plan.rules().matcher(), 64);
        let mut s = CollectSink::default();
        let mut pos = 0;
        let mut i = 0;
        while pos < input.len() {
            let n = chunk(i).clamp(1, input.len() - pos);
            p.feed(&input[pos..pos + n], &mut s).unwrap();
            pos += n;
            i += 1;
        }
        p.finish(&mut s).unwrap();
        s
    };
    let whole = run(&|_| usize::MAX);
    let bytewise = run(&|_| 1);
    let random = run(&|i| (i * 7919 + 13) % 17 + 1);
    assert_eq!(whole.out, input);
    assert_eq!(bytewise, whole, "{}: 1-byte reads differ", path.display());
    assert_eq!(random, whole, "{}: random chunks differ", path.display());
}

#[test]
fn all_scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.extension().is_some_and(|e| e == "toml") {
            run_one(&p);
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} scenarios found");
}
