//! Build check: logalarm links the system's libcurl, which has TLS and SMTP.
//!
//! curl-sys builds a bundled libcurl when pkg-config finds no system one, and that build has
//! neither SMTP nor the options logalarm sets for TLS: the binary would start and then fail
//! every `curl:` alarm. So the build stops instead, naming the package to install. (Rejected:
//! loading libcurl at run time like libstrophe — every curl call would go through dlsym; a
//! vendored build with TLS and SMTP — curl-sys offers none.)

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_version();
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
        "\nlogalarm needs the system libcurl (TLS, SMTP), and {}.\n\
         On Debian or Ubuntu: apt-get install libcurl4-openssl-dev pkg-config\n\
         (scripts/setup.sh does it), then `cargo clean -p curl-sys` and build again.\n",
        if bundled {
            "curl-sys built its bundled copy instead, which has no SMTP"
        } else {
            "pkg-config cannot find it"
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
