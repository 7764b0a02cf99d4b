//! `speech:` with the real espeak-ng: a WAV file is written, and its duration grows with the
//! length of the message.

use crate::support;
use std::path::Path;

/// Duration in seconds from a WAV file's header (`fmt ` byte rate, `data` size).
fn wav_seconds(path: &Path) -> f64 {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[0..4], b"RIFF", "not a WAV file");
    assert_eq!(&b[8..12], b"WAVE");
    let (mut pos, mut rate, mut data) = (12, 0u32, 0u32);
    while pos + 8 <= b.len() {
        let id = &b[pos..pos + 4];
        let size = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap());
        if id == b"fmt " {
            rate = u32::from_le_bytes(b[pos + 16..pos + 20].try_into().unwrap());
        } else if id == b"data" {
            // espeak-ng writing to a file it can seek fills the real size in.
            data = if size == 0 || size == u32::MAX {
                (b.len() - pos - 8) as u32
            } else {
                size
            };
        }
        pos += 8 + size.min((b.len() - pos) as u32) as usize;
    }
    assert!(rate > 0, "no fmt chunk");
    data as f64 / rate as f64
}

#[test]
fn speech_writes_a_wav_whose_length_follows_the_message() {
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut secs = Vec::new();
    for (i, text) in ["ALARM disk full", "ALARM the primary database stopped answering; failing over to the replica in the second data centre now"]
        .iter()
        .enumerate()
    {
        let wav = dir.path().join(format!("{i}.wav"));
        let alarm = format!("say speech:en;wav={}", wav.display());
        let input = format!("{text}\nquiet\n");
        let out = support::run(&["--alarm", &alarm, "--log-alarm", "say ^ALARM"], input.clone().into_bytes());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, input.as_bytes());
        secs.push(wav_seconds(&wav));
    }
    assert!(secs[0] > 0.3, "{secs:?}");
    assert!(
        secs[1] > secs[0] * 2.0,
        "a longer message speaks longer: {secs:?}"
    );
}

#[test]
fn unknown_voice_is_a_startup_error() {
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let out = support::run(&["--alarm", "say speech:klingon-xx"], Vec::new());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid alarm: say speech:klingon-xx") && err.contains("refused voice"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_wav_link_planted_in_a_shared_directory_is_not_followed_unless_told() {
    use std::os::unix::fs::PermissionsExt;
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let link = shared.join("alarm.wav");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let alarm = format!("say speech:en;wav={}", link.display());
    let out = support::run(
        &["--alarm", &alarm, "--log-alarm", "say ^ALARM"],
        b"ALARM x\n".to_vec(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("is a symbolic link in a directory others may write to"),
        "{err}"
    );
    assert!(err.contains("failed 1"), "counted as failed: {err}");
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"precious\n",
        "the target is untouched"
    );
    // Told to: followed, the WAV lands in the link's target.
    let alarm = format!("say speech:en;wav={};wav_follow_symlinks=1", link.display());
    let out = support::run(
        &["--alarm", &alarm, "--log-alarm", "say ^ALARM"],
        b"ALARM x\n".to_vec(),
    );
    assert!(out.status.success());
    assert!(wav_seconds(&victim) > 0.1);
}

#[test]
fn speech_alarms_left_queued_at_shutdown_are_counted_as_discarded() {
    if !support::have("espeak-ng", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    let alarm = format!("say speech:en;wav={}", wav.display());
    let input: Vec<u8> = (0..300)
        .flat_map(|i| format!("ALARM the disk of host number {i} is full\n").into_bytes())
        .collect();
    let out = support::run(
        &[
            "--alarm",
            &alarm,
            "--log-alarm",
            "say ^ALARM",
            "--alarm-freq",
            "0",
            "--alarm-grace",
            "1",
        ],
        input,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("exit: \"say\" (speech alarm"))
        .unwrap_or_else(|| panic!("{err}"));
    let n = |what: &str| -> u64 {
        let at = line.find(&format!("{what} ")).unwrap() + what.len() + 1;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(n("raised"), 300, "{line}");
    assert!(n("discarded") > 0, "{line}");
    assert_eq!(
        n("ran") + n("discarded") + n("dropped"),
        300,
        "every alarm accounted for: {line}"
    );
}
