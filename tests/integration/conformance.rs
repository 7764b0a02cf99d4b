//! Differential conformance: the real uWSGI 2.0 and logalarm on the same configuration and the
//! same input, compared live in every run (no expected output is copied from a run).
//!
//! One case (`tests/cases/*.toml`, see `case.rs`) is an alarm configuration (an ini fragment), the names of its
//! alarms, and log lines (with an optional delay between them). The harness turns every alarm
//! into a `cmd:` that appends a tagged record (`NAME<TAB>message`) to a file, writes the fragment
//! to `alarms.ini`, and runs
//! * uWSGI: `uwsgi --ini uwsgi.ini`, where uwsgi.ini sets up a master with `log-master`, loads
//!   `ini = alarms.ini`, and runs a script writing the lines (one `write()` each) as
//!   `attach-daemon`; when the script's end marker reaches uWSGI's log, in-flight commands get a
//!   second, then uWSGI is stopped with SIGINT (SIGTERM reloads it);
//! * logalarm: `script | logalarm --ini alarms.ini` (the same file).
//!
//! The two record multisets must be equal — unless the case documents a deviation, in which
//! case it states what each side must do (`expect_uwsgi`, `expect_logalarm`), so README's
//! compatibility table cannot drift from the code. Start-up error cases compare exit statuses and
//! check both name the offending value. Skipped (with a message) when `uwsgi` is not installed;
//! `scripts/test.sh` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::case::{self, Case};

const SEP: &str = "\u{1e}";

fn record_cmd(name: &str, out: &Path) -> String {
    // awk reads the whole message, then appends one record in one write (concurrent commands
    // cannot interleave). No `%` anywhere: uWSGI expands `%x` magic variables in ini files.
    format!(
        "alarm = {name} cmd:awk -v n={name} 'BEGIN {{ ORS = \"\" }} {{ s = s $0 \"\\n\" }} END {{ print n \"\\t\" s \"\\036\\n\" }}' >> {}\n",
        out.display()
    )
}

fn parse_records(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split(&format!("{SEP}\n"))
        .filter(|r| !r.is_empty())
        .map(|r| r.strip_suffix('\n').unwrap_or(r).to_string())
        .collect();
    v.sort();
    v
}

fn write_script(
    dir: &Path,
    lines: &[String],
    writes: &[String],
    delay_ms: u64,
    marker: bool,
) -> PathBuf {
    let data = dir.join("lines.txt");
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&data, text).unwrap();
    if !writes.is_empty() {
        // One small file per write: `cat` of it is one write() (uWSGI's framing unit).
        let mut body = String::from("#!/bin/sh\n");
        for (i, w) in writes.iter().enumerate() {
            let f = dir.join(format!("write{i}"));
            std::fs::write(&f, w).unwrap();
            body.push_str(&format!("cat {}\nsleep 0.05\n", f.display()));
        }
        if marker {
            body.push_str("printf 'CONFORMANCE_END_MARKER\\n'\nexec sleep 100000\n");
        }
        let all: String = writes.concat();
        std::fs::write(&data, all).unwrap();
        let script = dir.join("script.sh");
        std::fs::write(&script, body).unwrap();
        return script;
    }
    let script = dir.join("script.sh");
    let sleep = if delay_ms > 0 {
        format!("sleep {}", delay_ms as f64 / 1000.0)
    } else {
        ":".to_string()
    };
    let tail = if marker {
        "printf 'CONFORMANCE_END_MARKER\\n'\nexec sleep 100000\n"
    } else {
        ""
    };
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile IFS= read -r l; do printf '%s\\n' \"$l\"; {sleep}; done < {}\n{tail}",
            data.display()
        ),
    )
    .unwrap();
    script
}

struct Run {
    /// uWSGI only: input lines that never reached its log (its log pipe drops under load).
    lost: usize,
    status: Option<i32>,
    records: Vec<String>,
    messages: String,
}

/// `program ARGS...`, with descriptor 5 reading the output of `fd5` when given.
fn command_with_fd5(program: &str, args: &[&std::ffi::OsStr], fd5: Option<&str>) -> Command {
    match fd5 {
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        Some(snippet) => {
            let mut c = Command::new("bash");
            c.arg("-c")
                .arg("p=$1; shift; exec \"$p\" \"$@\" 5< <(eval \"$FD5\")")
                .arg("bash")
                .arg(program)
                .args(args)
                .env("FD5", snippet);
            c
        }
    }
}

fn run_uwsgi(
    dir: &Path,
    alarms_ini: &Path,
    script: &Path,
    out: &Path,
    curl: bool,
    fd5: Option<&str>,
) -> Run {
    let log = dir.join("uwsgi.log");
    let ini = dir.join("uwsgi.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\n{}master = true\nsocket = {}\nprocesses = 1\nlog-master = true\nlogto = {}\npidfile = {}\nini = {}\nattach-daemon = sh {}\n",
            if curl { "plugins = alarm_curl\n" } else { "" },
            dir.join("u.sock").display(),
            log.display(),
            dir.join("u.pid").display(),
            alarms_ini.display(),
            script.display()
        ),
    )
    .unwrap();
    let mut child = command_with_fd5("uwsgi", &["--ini".as_ref(), ini.as_os_str()], fd5)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("uwsgi starts");
    let t = Instant::now();
    let mut exited = None;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            exited = Some(st);
            break;
        }
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        if logged.contains("CONFORMANCE_END_MARKER") || t.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = match exited {
        Some(st) => st.code(),
        None => {
            // Let the last commands finish (they are forked by uWSGI, not waited for): at least
            // 1.5 s, then until the record file has not grown for 0.6 s (at most 8 s).
            let settle = Instant::now();
            let mut last = (0u64, Instant::now());
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
                if size != last.0 {
                    last = (size, Instant::now());
                }
                let waited = settle.elapsed();
                if (waited >= Duration::from_millis(1500)
                    && last.1.elapsed() >= Duration::from_millis(600))
                    || waited >= Duration::from_secs(8)
                {
                    break;
                }
            }
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            child.wait().ok().and_then(|s| s.code())
        }
    };
    let mut messages = String::new();
    if let Ok(o) = child.wait_with_output() {
        messages.push_str(&String::from_utf8_lossy(&o.stdout));
        messages.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    // A line counts as logged when its first 16 bytes are in the log (the smallest
    // log-master-bufsize the cases use: uWSGI logs a cut line cut, without its newline).
    let input = std::fs::read_to_string(dir.join("lines.txt")).unwrap_or_default();
    let lost = input
        .lines()
        .filter(|l| {
            memchr::memmem::find(logged.as_bytes(), &l.as_bytes()[..l.len().min(16)]).is_none()
        })
        .count();
    messages.push_str(&logged);
    Run {
        lost,
        status,
        records: parse_records(&std::fs::read_to_string(out).unwrap_or_default()),
        messages,
    }
}

fn run_logalarm(alarms_ini: &Path, script: &Path, out: &Path, fd5: Option<&str>) -> Run {
    let mut feeder = Command::new("sh")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let feed = feeder.stdout.take().unwrap();
    let o = command_with_fd5(
        &crate::support::bin_path().to_string_lossy(),
        &["--ini".as_ref(), alarms_ini.as_os_str()],
        fd5,
    )
    .stdin(feed)
    .output()
    .unwrap();
    let _ = feeder.wait();
    Run {
        lost: 0,
        status: o.status.code(),
        records: parse_records(&std::fs::read_to_string(out).unwrap_or_default()),
        messages: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Run a case; a run where uWSGI itself lost input lines, or ran only a strict subset of the
/// alarms logalarm ran (its master drops alarm runs under load: a non-blocking pipe to its
/// alarm thread), is repeated (four times at most), since its result says nothing about alarm
/// semantics. A logalarm bug shows in every run, so it still fails.
fn run_case(path: &Path) -> Result<(), String> {
    let mut last = Ok(());
    for _ in 0..5 {
        match run_case_once(path) {
            Err(e) if e.starts_with("LOST ") || e.starts_with("DROPPED ") => last = Err(e),
            other => return other,
        }
    }
    last
}

/// Whether every record of `part` is in `whole` (as many times).
fn sub_multiset(part: &[String], whole: &[String]) -> bool {
    let mut left: Vec<&String> = whole.iter().collect();
    part.iter()
        .all(|r| match left.iter().position(|x| *x == r) {
            Some(i) => {
                left.swap_remove(i);
                true
            }
            None => false,
        })
}

fn run_case_once(path: &Path) -> Result<(), String> {
    let case: Case = case::load(path);
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let dir = tempfile::tempdir().unwrap();
    let lines = case.lines();
    let mut results = Vec::new();
    for side in ["uwsgi", "logalarm"] {
        let sdir = dir.path().join(side);
        std::fs::create_dir_all(&sdir).unwrap();
        let out = sdir.join("records");
        let mut ini = String::from("[uwsgi]\n");
        for a in &case.alarms {
            ini.push_str(&record_cmd(a, &out));
        }
        let _recorder = if case.curl.is_empty() {
            None
        } else {
            let r = crate::support::Server::start("http_recorder.py", &out, &["--tagged"]);
            for c in &case.curl {
                let (name, keys) = c.split_once(';').unwrap_or((c.as_str(), ""));
                let keys = if keys.is_empty() {
                    String::new()
                } else {
                    format!(";{keys}")
                };
                ini.push_str(&format!(
                    "alarm = {name} curl:http://127.0.0.1:{}/{name}{keys}\n",
                    r.banner
                ));
            }
            Some(r)
        };
        ini.push_str(&case.config);
        ini.push('\n');
        let alarms_ini = sdir.join("alarms.ini");
        std::fs::write(&alarms_ini, ini).unwrap();
        let script = write_script(&sdir, &lines, &case.writes, case.delay_ms, side == "uwsgi");
        results.push(if side == "uwsgi" {
            run_uwsgi(
                &sdir,
                &alarms_ini,
                &script,
                &out,
                !case.curl.is_empty(),
                case.fd5.as_deref(),
            )
        } else {
            run_logalarm(&alarms_ini, &script, &out, case.fd5.as_deref())
        });
    }
    let (u, l) = (&results[0], &results[1]);
    if u.lost > 0 && case.error_names.is_none() && case.writes.is_empty() {
        return Err(format!(
            "LOST {name}: uWSGI lost {} input line(s) in its log pipe",
            u.lost
        ));
    }
    let ctx = |what: &str| {
        format!(
            "{name} ({}): {what}\n  uwsgi ({:?}): {:?}\n  logalarm ({:?}): {:?}\n  logalarm said: {}",
            case.description, u.status, u.records, l.status, l.records, l.messages.trim()
        )
    };
    if let Some(needle) = &case.logalarm_error_names {
        if case.deviation.is_none() {
            return Err(ctx("logalarm_error_names is for documented deviations"));
        }
        if u.status != Some(0) {
            return Err(ctx(
                "uWSGI no longer accepts this configuration, as the deviation says",
            ));
        }
        if l.status != Some(1) || !l.messages.contains(needle.as_str()) {
            return Err(ctx(&format!("logalarm must refuse it naming `{needle}`")));
        }
        return Ok(());
    }
    if let Some(needle) = &case.error_names {
        if u.status == Some(0) || l.status == Some(0) || u.status.is_none() {
            return Err(ctx("both must refuse to start"));
        }
        if l.status != Some(1) || u.status != Some(1) {
            return Err(ctx("both must exit with status 1"));
        }
        if !u.messages.contains(needle.as_str()) || !l.messages.contains(needle.as_str()) {
            return Err(ctx(&format!(
                "both must name `{needle}`; uwsgi said: {}",
                u.messages
                    .lines()
                    .rev()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" | ")
            )));
        }
        return Ok(());
    }
    if u.status.is_none() || l.status != Some(0) {
        return Err(ctx("both must run and stop cleanly"));
    }
    let sorted = |v: &Vec<String>| {
        let mut v = v.clone();
        v.sort();
        v
    };
    match (&case.deviation, &case.expect_uwsgi, &case.expect_logalarm) {
        (Some(_), Some(eu), Some(el)) => {
            if u.records != sorted(eu) {
                // uWSGI ran fewer of the alarms the deviation names (its master drops alarm
                // runs under load, see `run_case`): repeated, like any case.
                let dropped = u.records.len() < eu.len() && sub_multiset(&u.records, eu);
                return Err(format!(
                    "{}{}",
                    if dropped { "DROPPED " } else { "" },
                    ctx(&format!(
                        "uWSGI no longer does what the deviation says: {eu:?}"
                    ))
                ));
            }
            if l.records != sorted(el) {
                return Err(ctx(&format!(
                    "logalarm does not do what the deviation says: {el:?}"
                )));
            }
        }
        (Some(_), _, _) => {
            return Err(ctx(
                "a deviation case needs expect_uwsgi and expect_logalarm",
            ))
        }
        _ => {
            if u.records != l.records {
                let only = |a: &Vec<String>, b: &Vec<String>| {
                    let mut b = b.clone();
                    let mut out = Vec::new();
                    for r in a {
                        match b.iter().position(|x| x == r) {
                            Some(i) => {
                                b.swap_remove(i);
                            }
                            None => out.push(r.clone()),
                        }
                    }
                    out
                };
                let (ou, ol) = (only(&u.records, &l.records), only(&l.records, &u.records));
                return Err(format!(
                    "{}{name} ({}): records differ ({} vs {})\n  only uwsgi: {:?}\n  only logalarm: {:?}\n  logalarm said: {}",
                    if ou.is_empty() { "DROPPED " } else { "" },
                    case.description,
                    u.records.len(),
                    l.records.len(),
                    ou,
                    ol,
                    l.messages.trim()
                ));
            }
            if u.records.is_empty()
                && !lines.is_empty()
                && (case.alarms.iter().any(|a| !a.is_empty()) || !case.curl.is_empty())
                && !case.description.contains("no alarm")
            {
                return Err(ctx("no alarm fired at all: the case tests nothing"));
            }
        }
    }
    Ok(())
}

#[test]
fn conformance_with_real_uwsgi() {
    if Command::new("uwsgi").arg("--version").output().is_err() {
        // In CI a missing oracle is a failure, not a silent pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "uwsgi is not installed: scripts/test.sh installs uwsgi-core"
        );
        eprintln!("SKIPPED: uwsgi is not installed (scripts/test.sh installs uwsgi-core)");
        return;
    }
    let mut cases: Vec<PathBuf> = case::paths(40)
        .into_iter()
        .filter(|p| case::load(p).uwsgi)
        .collect();
    assert!(cases.len() >= 25, "only {} uWSGI cases", cases.len());
    // `LOGALARM_CASES=curl cargo test conformance` runs the cases whose name holds `curl`.
    if let Ok(only) = std::env::var("LOGALARM_CASES") {
        cases.retain(|p| p.to_string_lossy().contains(&only));
    }
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if let Err(e) = run_case(case) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
