//! `curl:` and `airbrake:` alarms against real servers on 127.0.0.1: an HTTP/HTTPS recorder
//! (Python's http.server + ssl, with a CA-signed leaf and an untrusted one) and a real SMTP
//! server (aiosmtpd) with plain, AUTH, STARTTLS and implicit-TLS ports. Every test runs the
//! real `logalarm` binary and asserts on what the servers recorded.

use crate::support;
use std::path::Path;
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{have, latin1, Server, Tls};

fn tls() -> &'static Tls {
    static TLS: OnceLock<Tls> = OnceLock::new();
    TLS.get_or_init(Tls::new)
}

fn ready() -> bool {
    have("python3", &["-c", "import aiosmtpd"]) && have("openssl", &["version"])
}

/// Run logalarm with `alarm` on every line matching `^ALARM`, with `SSL_CERT_FILE` = the test CA.
fn logalarm(alarms: &[&str], input: &str) -> Output {
    logalarm_with(&["--alarm-grace", "30"], alarms, input)
}

fn logalarm_with(extra: &[&str], alarms: &[&str], input: &str) -> Output {
    let mut args = extra.to_vec();
    args.extend(["--alarm-freq", "0"]);
    let mut names = Vec::new();
    for a in alarms {
        args.push("--alarm");
        args.push(a);
        names.push(a.split(' ').next().unwrap());
    }
    let rule = format!("{} ^ALARM", names.join(","));
    args.push("--log-alarm");
    args.push(&rule);
    let mut cmd = support::bin();
    cmd.args(&args).env("SSL_CERT_FILE", &tls().ca);
    let out = support::run_cmd(cmd, input.as_bytes().to_vec());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, input.as_bytes(), "every line passes through");
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn http(dir: &Path, name: &str, args: &[&str]) -> (Server, String) {
    let s = Server::start("http_recorder.py", &dir.join(name), args);
    let port = s.banner.clone();
    (s, port)
}

#[test]
fn http_put_with_basic_auth_and_the_header_block() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = http(dir.path(), "rec", &[]);
    let out = logalarm(
        &[&format!(
            "hook curl:http://127.0.0.1:{port}/argh;auth_user=topogigio;auth_pass=s3cr3t;mail_to=ops@example.com;subject=uWSGI alarm"
        )],
        "ALARM disk full\nquiet line\n",
    );
    let r = srv.wait_records(1, 5);
    assert_eq!(r.len(), 1, "{}", stderr(&out));
    assert_eq!(r[0]["method"], "PUT");
    assert_eq!(r[0]["path"], "/argh");
    assert_eq!(r[0]["auth"], "topogigio:s3cr3t");
    let want = b"To: ops@example.com\r\nSubject: uWSGI alarm\r\n\r\nALARM disk full\n";
    assert_eq!(latin1(&r[0]["body"]), want);
    assert_eq!(r[0]["headers"]["content-length"], want.len().to_string());
    assert!(!stderr(&out).contains("s3cr3t"));
}

/// Run logalarm with `args` and `LOGALARM_LIBCURL` set to `lib`, `input` on its stdin.
fn with_libcurl(lib: &str, args: &[&str], input: &str) -> Output {
    let mut cmd = support::bin();
    cmd.args(args).env("LOGALARM_LIBCURL", lib);
    support::run_cmd(cmd, input.as_bytes().to_vec())
}

/// Whether the ELF executable at `path` has an interpreter (PT_INTERP): a dynamically linked
/// binary, which can open libraries at run time; the static musl one has none.
fn dynamically_linked(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let o = phoff + i * size;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}

#[test]
fn libcurl_is_opened_only_for_alarms_that_need_it_and_a_missing_one_is_named() {
    let bad = "/nonexistent/libcurl.so.4";
    // Only a log: alarm: libcurl is never opened, so a library that cannot be is no matter.
    let out = with_libcurl(
        bad,
        &["--alarm", "a log:", "--log-alarm", "a ERR"],
        "ERR x\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let both = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(both.contains("ALARM: ERR x"), "{both}");
    // A curl: alarm opens it at start-up: one error naming the alarm, the variable and the
    // loader's reason, nothing read; the static binary has its libcurl built in (the variable
    // does not apply) and starts.
    let out = with_libcurl(
        bad,
        &[
            "--alarm",
            "hook curl:http://127.0.0.1:9/x",
            "--log-alarm",
            "hook ERR",
        ],
        "quiet\n",
    );
    if !dynamically_linked(&support::bin_path()) {
        assert!(out.status.success(), "{}", stderr(&out));
        return;
    }
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("hook curl:http://127.0.0.1:9/x")
            && err.contains(&format!("LOGALARM_LIBCURL={bad}: cannot load it"))
            && err.contains("No such file"),
        "{err}"
    );
    // Debian's other libcurl, when installed, delivers as well.
    if !ready() || !Path::new("/usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = http(dir.path(), "rec", &[]);
    let hook = format!("hook curl:http://127.0.0.1:{port}/g;method=POST");
    let out = with_libcurl(
        "libcurl-gnutls.so.4",
        &[
            "--alarm",
            &hook,
            "--log-alarm",
            "hook ERR",
            "--alarm-grace",
            "30",
        ],
        "ERR via gnutls\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let r = srv.wait_records(1, 5);
    assert_eq!(r[0]["method"], "POST");
    assert_eq!(latin1(&r[0]["body"]), b"ERR via gnutls\n");
}

#[test]
fn method_override_and_a_plain_body() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = http(dir.path(), "rec", &[]);
    logalarm(
        &[&format!("post curl:http://127.0.0.1:{port}/x;method=POST")],
        "ALARM \x01binary? utf-8 ✓\n",
    );
    let r = srv.wait_records(1, 5);
    assert_eq!(r[0]["method"], "POST");
    assert_eq!(r[0]["auth"], serde_json::Value::Null);
    assert_eq!(
        latin1(&r[0]["body"]),
        "ALARM \x01binary? utf-8 ✓\n".as_bytes()
    );
}

#[test]
fn https_verifies_certificates_unless_ssl_insecure() {
    if !ready() {
        return;
    }
    let t = tls();
    let dir = tempfile::tempdir().unwrap();
    let (good, gport) = http(
        dir.path(),
        "good",
        &[
            "--cert",
            t.cert.to_str().unwrap(),
            "--key",
            t.key.to_str().unwrap(),
        ],
    );
    let (rogue, rport) = http(
        dir.path(),
        "rogue",
        &[
            "--cert",
            t.rogue_cert.to_str().unwrap(),
            "--key",
            t.rogue_key.to_str().unwrap(),
        ],
    );
    let out = logalarm(
        &[
            &format!("ok curl:https://localhost:{gport}/ok;method=POST"),
            &format!("bad curl:https://127.0.0.1:{rport}/bad;auth_user=u;auth_pass=pa55word"),
        ],
        "ALARM tls\n",
    );
    let r = good.wait_records(1, 5);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["tls"], true);
    assert!(
        rogue.records().is_empty(),
        "the untrusted server got nothing"
    );
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("alarm \"bad\""))
        .collect();
    assert_eq!(lines.len(), 1, "reported once, not retried: {err}");
    assert!(
        lines[0].starts_with("[uwsgi-alarm-curl] curl_easy_perform() failed:"),
        "{err}"
    );
    assert!(
        lines[0].contains("not trusted") && lines[0].contains("ssl_insecure"),
        "{err}"
    );
    assert!(!err.contains("pa55word"));

    let out = logalarm(
        &[&format!(
            "bad curl:https://127.0.0.1:{rport}/bad;ssl_insecure=1"
        )],
        "ALARM tls\n",
    );
    assert_eq!(rogue.wait_records(1, 5).len(), 1, "{}", stderr(&out));
}

#[test]
fn transient_failures_are_retried_permanent_ones_are_not() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (flaky, fport) = http(dir.path(), "flaky", &["--statuses", "503,429,200"]);
    let (gone, gport) = http(dir.path(), "gone", &["--statuses", "404"]);
    let out = logalarm(
        &[
            &format!("flaky curl:http://127.0.0.1:{fport}/"),
            &format!("gone curl:http://127.0.0.1:{gport}/"),
        ],
        "ALARM once\n",
    );
    let err = stderr(&out);
    let f = flaky.wait_records(3, 10);
    assert_eq!(f.len(), 3, "{err}");
    assert!(f.iter().all(|r| latin1(&r["body"]) == b"ALARM once\n"));
    let retries: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("alarm \"flaky\""))
        .collect();
    assert_eq!(retries.len(), 2, "{err}");
    assert!(
        retries[0].contains("HTTP 503") && retries[0].contains("retry 1 of 3"),
        "{err}"
    );
    assert!(
        retries[1].contains("HTTP 429") && retries[1].contains("retry 2 of 3"),
        "{err}"
    );
    assert_eq!(gone.records().len(), 1, "{err}");
    let g: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("alarm \"gone\""))
        .collect();
    assert_eq!(g.len(), 1, "{err}");
    assert!(
        g[0].contains("HTTP 404") && g[0].contains("not retried"),
        "{err}"
    );
}

#[test]
fn a_hanging_endpoint_times_out_and_never_delays_other_alarms() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (hang, hport) = http(dir.path(), "hang", &["--delay", "3"]);
    let (fast, fport) = http(dir.path(), "fast", &[]);
    let t0 = Instant::now();
    let input: String = (0..2_000).map(|i| format!("ALARM {i}\n")).collect();
    let out = logalarm_with(
        &["--alarm-grace", "5"],
        &[
            &format!("hang curl:http://127.0.0.1:{hport}/;timeout=1;retries=1"),
            &format!("fast curl:http://127.0.0.1:{fport}/;method=POST"),
        ],
        &input,
    );
    let err = stderr(&out);
    // The fast alarm ran for lines queued behind the hanging one's.
    assert!(fast.records().len() > 1, "{err}");
    let h: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("alarm \"hang\"") && l.contains("Timeout"))
        .collect();
    assert!(h.len() >= 2, "{err}");
    assert!(
        h[0].contains("retry 1 of 1") && h[1].contains("given up after 2"),
        "{err}"
    );
    assert!(hang.records().len() >= 2);
    assert!(t0.elapsed() < Duration::from_secs(60));
}

/// A queue is bounded in bytes as well as in events: 2,000 raised lines of 8 KB (16 MB of
/// messages) behind an endpoint that hangs, with room for 100,000 events, are dropped once
/// 8 MiB are queued, and every one is counted.
#[test]
fn a_queue_holds_at_most_8_mib_of_messages() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_hang, hport) = http(dir.path(), "hang", &["--delay", "3"]);
    let line = format!("ALARM {}\n", "x".repeat(7_993));
    let input: String = (0..2_000).map(|_| line.as_str()).collect();
    let out = logalarm_with(
        &[
            "--alarm-grace",
            "1",
            "--alarm-queue",
            "100000",
            "--alarm-overflow",
            "hang drop",
        ],
        &[&format!(
            "hang curl:http://127.0.0.1:{hport}/;timeout=1;retries=0"
        )],
        &input,
    );
    let err = stderr(&out);
    let count = |what: &str| crate::overflow::counter(&err, "hang", what);
    assert_eq!(count("raised"), 2_000, "{err}");
    // 8 MiB hold 1,048 of these messages (one more may be in the action): the rest are
    // dropped. (Counted in events alone, none would be.)
    assert!((940..=960).contains(&count("dropped")), "{err}");
    assert_eq!(
        count("ran") + count("dropped") + count("discarded"),
        2_000,
        "every alarm is accounted for: {err}"
    );
}

#[test]
fn alarms_older_than_max_age_are_given_up_in_one_line() {
    if !ready() {
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = logalarm(
        &[&format!(
            "down curl:http://127.0.0.1:{port}/;retries=100;max_age=1"
        )],
        "ALARM nobody listens\n",
    );
    let err = stderr(&out);
    assert!(
        err.contains("Couldn't connect to server") || err.contains("Could not connect"),
        "{err}"
    );
    let g: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("older than max_age=1s"))
        .collect();
    assert_eq!(g.len(), 1, "{err}");
    assert!(g[0].starts_with("[uwsgi-alarm-curl] given up"), "{err}");
}

fn smtp(dir: &Path, args: &[&str]) -> (Server, serde_json::Value) {
    let t = tls();
    let mut all = vec![
        "--cert",
        t.cert.to_str().unwrap(),
        "--key",
        t.key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let s = Server::start("smtp_recorder.py", &dir.join("mails"), &all);
    let ports: serde_json::Value = serde_json::from_str(&s.banner).unwrap();
    (s, ports)
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[test]
fn smtp_plain_auth_starttls_and_smtps_deliver_real_mail() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, p) = smtp(dir.path(), &[]);
    let out = logalarm(
        &[
            &format!("plain curl:smtp://127.0.0.1:{};mail_from=uwsgi@example.com;mail_to=a@example.com,b@example.com;subject=alarm from uWSGI !!!", p["plain"]),
            &format!("auth curl:smtp://127.0.0.1:{};mail_to=a@example.com;auth_user=alarm;auth_pass=alarmpw", p["auth"]),
            &format!("starttls curl:smtp://localhost:{};ssl=1;mail_to=a@example.com;mail_from=x@example.com;auth_user=alarm;auth_pass=alarmpw", p["starttls"]),
            &format!("smtps curl:smtps://localhost:{};mail_to=a@example.com;auth_user=alarm@example.com;auth_pass=alarmpw", p["smtps"]),
        ],
        "ALARM the world exploded\n",
    );
    let err = stderr(&out);
    let mails = srv.wait_records(4, 10);
    assert_eq!(mails.len(), 4, "{err}");
    let by = |k: &str| {
        mails
            .iter()
            .find(|m| m["port"] == k)
            .unwrap_or_else(|| panic!("no {k} mail: {err}"))
    };

    let m = by("plain");
    assert_eq!(m["mail_from"], "uwsgi@example.com");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["a@example.com", "b@example.com"])
    );
    assert_eq!(m["tls"], false);
    let data = String::from_utf8(latin1(&m["data"])).unwrap();
    assert_eq!(header(&data, "From"), Some("uwsgi@example.com"));
    assert_eq!(header(&data, "To"), Some("a@example.com, b@example.com"));
    assert_eq!(header(&data, "Subject"), Some("alarm from uWSGI !!!"));
    assert!(
        header(&data, "Date").is_some_and(|d| d.len() > 25),
        "{data}"
    );
    assert!(header(&data, "Message-ID").is_some_and(|d| d.starts_with('<') && d.ends_with('>')));
    assert!(
        data.ends_with("\r\n\r\nALARM the world exploded\r\n"),
        "{data:?}"
    );

    let m = by("auth");
    assert_eq!(m["auth_user"], "alarm");
    assert!(m["mail_from"].as_str().unwrap().starts_with("logalarm@"));
    let m = by("starttls");
    assert_eq!(
        (m["tls"].clone(), m["auth_user"].clone()),
        (true.into(), "alarm".into())
    );
    let m = by("smtps");
    assert_eq!(m["tls"], true);
    assert_eq!(
        m["mail_from"], "alarm@example.com",
        "auth_user is the sender by default"
    );
    assert!(!err.contains("alarmpw"), "{err}");
}

#[test]
fn smtp_wrong_password_and_missing_starttls_are_permanent_and_4xx_is_retried() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, p) = smtp(dir.path(), &["--tempfail", "2"]);
    let out = logalarm(
        &[
            &format!("wrong curl:smtp://127.0.0.1:{};mail_to=a@example.com;auth_user=alarm;auth_pass=WRONGpw", p["auth"]),
            &format!("notls curl:smtp://127.0.0.1:{};mail_to=a@example.com;ssl=1", p["plain"]),
        ],
        "ALARM x\n",
    );
    let err = stderr(&out);
    for name in ["wrong", "notls"] {
        let l: Vec<&str> = err
            .lines()
            .filter(|l| l.contains(&format!("alarm \"{name}\"")))
            .collect();
        assert_eq!(l.len(), 1, "{name}: {err}");
        assert!(
            l[0].starts_with("[uwsgi-alarm-curl] curl_easy_perform() failed")
                && l[0].contains("not retried"),
            "{err}"
        );
    }
    assert!(!err.contains("WRONGpw"), "{err}");
    assert!(srv.records().is_empty());

    let out = logalarm(
        &[&format!(
            "later curl:smtp://127.0.0.1:{};mail_to=a@example.com",
            p["plain"]
        )],
        "ALARM try again\n",
    );
    let err = stderr(&out);
    assert_eq!(srv.wait_records(1, 10).len(), 1, "{err}");
    let l: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("alarm \"later\""))
        .collect();
    assert_eq!(l.len(), 2, "{err}");
    assert!(
        l[0].contains("451") && l[0].contains("retry 1 of 3"),
        "{err}"
    );
}

#[test]
fn airbrake_notices_validate_against_the_v2_3_schema_and_v3_is_json() {
    if !ready() || !have("xmllint", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = http(dir.path(), "rec", &[]);
    let out = logalarm(
        &[
            &format!("errbit airbrake:http://127.0.0.1:{port}/notifier_api/v2/notices;apikey=APIKEY123;subject=uWSGI segfault;env=staging"),
            &format!("v3 airbrake:http://127.0.0.1:{port}/api/v3/projects/1/notices;apikey=APIKEY123;api=v3"),
        ],
        "ALARM <disk> & \"full\" \x01\n",
    );
    let err = stderr(&out);
    let r = srv.wait_records(2, 5);
    assert_eq!(r.len(), 2, "{err}");
    assert!(!err.contains("APIKEY123"));
    let xml = r
        .iter()
        .find(|r| r["path"] == "/notifier_api/v2/notices")
        .unwrap();
    assert_eq!(xml["method"], "POST");
    assert_eq!(xml["headers"]["content-type"], "text/xml; charset=utf-8");
    let body = dir.path().join("notice.xml");
    std::fs::write(&body, latin1(&xml["body"])).unwrap();
    // The Airbrake v2.3 notice schema, kept in the repository (tests/data/airbrake_2_3.xsd).
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/airbrake_2_3.xsd");
    let v = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&body)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let text = String::from_utf8(latin1(&xml["body"])).unwrap();
    assert!(text.contains("<api-key>APIKEY123</api-key>"));
    assert!(
        text.contains("<message>ALARM &lt;disk&gt; &amp; &quot;full&quot; \u{FFFD}</message>"),
        "{text}"
    );
    assert!(text.contains("<environment-name>staging</environment-name>"));

    let json = r
        .iter()
        .find(|r| r["path"] == "/api/v3/projects/1/notices")
        .unwrap();
    assert_eq!(json["headers"]["authorization"], "Bearer APIKEY123");
    let n: serde_json::Value = serde_json::from_slice(&latin1(&json["body"])).unwrap();
    assert_eq!(n["errors"][0]["type"], "RuntimeError");
    assert_eq!(n["errors"][0]["message"], "ALARM <disk> & \"full\" \u{1}");
    assert_eq!(n["context"]["notifier"]["name"], "logalarm");
}

#[test]
fn a_supervised_process_that_segfaults_sends_an_airbrake_notice() {
    if !ready() || !have("xmllint", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (srv, port) = http(dir.path(), "rec", &[]);
    let alarm =
        format!("errbit airbrake:http://127.0.0.1:{port}/notifier_api/v2/notices;apikey=K3Y");
    let out = support::bin()
        .args([
            "--alarm",
            &alarm,
            "--alarm-segfault",
            "errbit",
            "--",
            "python3",
            "-c",
            "import ctypes; print('about to crash', flush=True); ctypes.string_at(0)",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(139), "{err}");
    let r = srv.wait_records(1, 10);
    assert_eq!(r.len(), 1, "{err}");
    let body = latin1(&r[0]["body"]);
    let file = dir.path().join("notice.xml");
    std::fs::write(&file, &body).unwrap();
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/airbrake_2_3.xsd");
    let v = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(&file)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("killed by signal 11 (SIGSEGV)"), "{text}");
    assert!(text.contains("<component>errbit</component>"), "{text}");
}
