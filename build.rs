//! Build check: the static musl binary links a libcurl that has TLS and SMTP.
//!
//! The dynamically linked build opens the system's libcurl at run time (src/sys/curl.rs) and
//! needs nothing here. The static musl build links libcurl through curl-sys, which builds a
//! bundled copy when pkg-config finds no libcurl for the target, and that copy has neither SMTP
//! nor the TLS options logalarm sets: the binary would start and then fail every `curl:`
//! alarm. So that build stops instead (scripts/static-musl.sh builds the right libcurl).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_version();
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    // Set by curl-sys's build script (`links = "curl"`) when it built its bundled copy.
    println!("cargo:rerun-if-env-changed=DEP_CURL_STATIC");
    let found = Command::new("pkg-config")
        .args(["--exists", "libcurl"])
        .status()
        .is_ok_and(|s| s.success());
    let bundled = std::env::var_os("DEP_CURL_STATIC").is_some();
    if found && !bundled {
        return;
    }
    eprintln!(
        "\nthe static logalarm needs a libcurl for musl with TLS and SMTP, and {}.\n\
         Build it with scripts/static-musl.sh, which builds that libcurl first.\n",
        if bundled {
            "curl-sys built its bundled copy instead, which has no SMTP"
        } else {
            "pkg-config cannot find one"
        }
    );
    std::process::exit(1);
}

/// `LOGALARM_GIT`: the commit the binary is built from (`logalarm --version`), or `unknown`
/// outside a git checkout (a packaged source). Rebuilt when HEAD moves.
fn git_version() {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={dir}/{head}");
        }
        println!("cargo:rerun-if-changed={dir}/packed-refs");
    }
    println!("cargo:rustc-env=LOGALARM_GIT={hash}");
}
