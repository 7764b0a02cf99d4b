//! Every self-contained case of `tests/cases` (see `case.rs`) through the binary and the library.
//!
//! Each scenario runs twice: through the real binary end to end (alarms are `log:` alarms, read
//! back from the log output, so anti-flood, truncation and the dispatcher are the real ones), and
//! through the library pipeline fed whole, byte by byte and in random chunks, which must all raise
//! identical alarm events and pass identical bytes.

use std::io::Write;
use std::process::{Command, Stdio};

use logalarm::testing::CollectSink;
use logalarm::Pipeline;

use crate::case;

/// Alarm lines of the output (`<date> - ALARM: REST`) → REST; and the output without them.
fn split_output(out: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut alarms = Vec::new();
    let mut rest = Vec::new();
    for line in out.split_inclusive(|&b| b == b'\n') {
        match line.windows(10).position(|w| w == b" - ALARM: ") {
            Some(p) if p == 24 => {
                // `NAME message` (the alarm's prefix is its name) → `NAME<TAB>message`.
                let body = &line[p + 10..];
                let mut record = body.strip_suffix(b"\n").unwrap_or(body).to_vec();
                if let Some(sp) = record.iter().position(|&b| b == b' ') {
                    record[sp] = b'\t';
                }
                alarms.push(record);
            }
            _ => rest.extend_from_slice(line),
        }
    }
    (alarms, rest)
}

fn run_one(path: &std::path::Path) {
    let sc = case::load(path);
    let dir = tempfile::tempdir().unwrap();
    let mut ini = String::from("[uwsgi]\n");
    for a in &sc.alarms {
        ini.push_str(&format!("alarm = {a} log:{a}\n"));
    }
    ini.push_str(&sc.config);
    ini.push('\n');
    let ini_path = dir.path().join("scenario.ini");
    std::fs::write(&ini_path, ini).unwrap();
    let mut args = vec!["--ini".to_string(), ini_path.to_str().unwrap().to_string()];
    args.extend(sc.args.iter().cloned());
    let input = sc.input_bytes();
    let expect = sc.expected();

    // 1. The real binary.
    let mut child = Command::new(crate::support::bin_path())
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
    if let Some(expect) = &expect {
        assert_eq!(
            show(&alarms),
            show(expect),
            "{}: {}",
            path.display(),
            sc.description
        );
    }
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
    let mut n = 0;
    for path in case::paths(40) {
        if !case::load(&path).self_contained() {
            continue;
        }
        run_one(&path);
        n += 1;
    }
    assert!(n >= 40, "only {n} self-contained cases");
}
