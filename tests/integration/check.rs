//! `logalarm check`: a configuration validated without running, through the real binary.

use crate::support::{assert_no_secret, bin};

/// (the broken line, what the error must say). Each goes on line 4 of an ini file.
const BROKEN: [(&str, &str); 20] = [
    ("alarm = nospace", "invalid alarm syntax: nospace"),
    ("alarm = b unknown:x", "unknown alarm type `unknown`"),
    ("log-alarm = missing ERROR", "no alarm named \"missing\""),
    (
        "log-alarm = a ERROR(",
        "invalid log-alarm: a ERROR(: regex error",
    ),
    ("alarm-freq = abc", "invalid alarm-freq: `abc`"),
    ("alarm-msg-size = 0", "invalid alarm-msg-size: `0`"),
    (
        "log-master-bufsize = 999999999999",
        "invalid log-master-bufsize",
    ),
    ("alarm-backlog = nope", "invalid alarm-backlog: nope"),
    ("alarm-segfault = nope", "invalid alarm-segfault: nope"),
    ("alarm-overflow = a sometimes", "unknown policy `sometimes`"),
    ("alarm = b signal:99", "`99` is not a signal number"),
    ("alarm = b xmpp:onlyjid", "expected xmpp:JID;PASSWORD;TO"),
    ("udp = notanaddress", "invalid udp: notanaddress"),
    ("alarm-queue = -1", "invalid alarm-queue: `-1`"),
    ("ini = /nonexistent.ini", "invalid ini: /nonexistent.ini"),
    ("alarm = a cmd:true", "alarm \"a\" is already defined"),
    (
        "alarm-spool-max-size = lots",
        "invalid alarm-spool-max-size: `lots`",
    ),
    ("rule-syntax = perl", "invalid rule-syntax: `perl`"),
    (
        "alarm-fd = a x oops",
        "invalid alarm-fd: a x oops: descriptor `x`",
    ),
    ("alarm = b mule:abc", "`abc` is not a mule number"),
];

#[test]
fn twenty_broken_configs_each_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (line, says)) in BROKEN.iter().enumerate() {
        let ini = dir.path().join(format!("broken{i}.ini"));
        std::fs::write(
            &ini,
            format!("[uwsgi]\nalarm = a log:\nlog-alarm = a ok\n{line}\nalarm-freq = 1\n"),
        )
        .unwrap();
        let out = bin()
            .args(["check", "--ini", ini.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{line}: {err}");
        assert!(err.contains(says), "{line}: {err}");
        let at = format!("(in {}:4)", ini.display());
        assert!(err.contains(&at), "{line}: {err} lacks {at}");
        assert!(
            out.stdout.is_empty(),
            "{line}: nothing on stdout when invalid"
        );
    }
}

#[test]
fn a_valid_config_shown_with_origins_and_masked_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("app.ini");
    std::fs::write(
        &ini,
        "[uwsgi]\n\
         alarm = mail curl:smtp://alice:s3cret@localhost:25;mail_from=a@b;mail_to=c@d\n\
         alarm = page log:PAGE\n\
         log-alarm = mail,page ERROR (\\w+) failed\n\
         not-log-alarm = page harmless\n\
         alarm-freq = 10\n",
    )
    .unwrap();
    let out = bin()
        .args(["check", "--ini", ini.to_str().unwrap()])
        .args(["--alarm", "x cmd:true", "--log-alarm", "x (?<=a)b"])
        .output()
        .unwrap();
    assert_no_secret(&out.stdout);
    assert_no_secret(&out.stderr);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let ini = ini.display();
    for want in [
        "the configuration is valid (3 alarm(s), 3 rule(s), 0 warning(s))".to_string(),
        format!(
            "alarm = mail curl:smtp://alice:***@localhost:25;mail_from=a@b;mail_to=c@d  # {ini}:2"
        ),
        "alarm-freq = 10".to_string(),
        format!("# {ini}:6"),
        "alarm = x cmd:true".to_string(),
        "# command line".to_string(),
        "page log:PAGE  (overflow: block; runs on the main alarm thread)".to_string(),
        "x cmd:true  (overflow: drop; runs on its own thread)".to_string(),
        format!("not-log-alarm page harmless  # {ini}:5"),
        "runs on: the automaton, each match confirmed by PCRE".to_string(),
        "engine: literal-first".to_string(),
        "alarm-freq 10 s; alarm-msg-size 8192".to_string(),
    ] {
        assert!(text.contains(&want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn warnings_make_status_two() {
    let out = bin()
        .args([
            "check",
            "--alarm",
            "a log:",
            "--log-alarm",
            "a (a|b)*a(a|b){20}c",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("*** warnings ***"), "{text}");
    assert!(text.contains("PATHOLOGICAL"), "{text}");
    assert!(text.contains("1 warning(s)"), "{text}");
}

/// A rule every match of which holds a newline (fail2ban's multi-line filters) is accepted,
/// as uWSGI accepts it, and named once, at `check` and at start-up, as never matching; a rule
/// with a newline in one branch only is not.
#[test]
fn rules_that_can_only_match_across_lines_are_named() {
    let dead = r#"a .*\nWARNING: Authentication attempt from \S+ for user "[^"]*" failed\.$"#;
    let out = bin()
        .args(["check", "--alarm", "a log:", "--log-alarm", dead])
        .args(["--log-alarm", r"a (x\n|y)z"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert_eq!(text.matches("can never match").count(), 1, "{text}");
    assert!(
        text.contains(&format!("log-alarm {dead}: can never match")),
        "{text}"
    );
    let mut child = bin()
        .args(["--alarm", "a log:", "--log-alarm", dead])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"x\nWARNING: Authentication attempt from 10.0.0.1 for user \"r\" failed.\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("can never match").count(), 1, "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ALARM"));
}

/// How the rules without long literals are found is said once for the set: the rule that
/// sends the automaton over every byte is named (and only it), and a set whose rules are
/// anchored at a line's ends says they are checked there.
#[test]
fn the_rule_that_sends_the_automaton_over_every_byte_is_named() {
    let check = |rules: &[&str]| {
        let mut cmd = bin();
        cmd.args(["check", "--alarm", "a log:"]);
        for r in rules {
            cmd.args(["--log-alarm", &format!("a {r}")]);
        }
        let out = cmd.output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = check(&["ERROR disk full", r"[a-z]+ [0-9]+", r"^x[0-9]"]);
    assert!(
        text.contains("the automaton runs over every byte for them")
            && text.contains("\n    log-alarm a [a-z]+ [0-9]+  # command line\n)"),
        "{text}"
    );
    assert!(!text.contains("    log-alarm a ^x[0-9]  #"), "{text}");
    let text = check(&["ERROR disk full", r"^x[0-9]", r"[0-9]: $"]);
    assert!(
        text.contains("2 rule(s) without long literals: their candidate lines are found by an automaton anchored at each line's start or end"),
        "{text}"
    );
    assert!(!text.contains("every byte for them"), "{text}");
}

#[test]
fn version_names_the_commit() {
    let out = bin().arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let want = match head {
        Some(h) => format!("logalarm {} (git {h})\n", env!("CARGO_PKG_VERSION")),
        None => format!("logalarm {} (git unknown)\n", env!("CARGO_PKG_VERSION")),
    };
    assert_eq!(text, want);
}
