//! Build OpenSSL for the target into `$LOGALARM_OPENSSL_OUT` (see Cargo.toml).

fn main() {
    println!("cargo:rerun-if-env-changed=LOGALARM_OPENSSL_OUT");
    let Some(out) = std::env::var_os("LOGALARM_OPENSSL_OUT") else {
        eprintln!("LOGALARM_OPENSSL_OUT is not set (scripts/static-musl.sh sets it)");
        std::process::exit(1);
    };
    let (Ok(target), Ok(host)) = (std::env::var("TARGET"), std::env::var("HOST")) else {
        eprintln!("cargo did not set TARGET and HOST");
        std::process::exit(1);
    };
    let built = openssl_src::Build::new()
        .out_dir(std::path::PathBuf::from(out))
        .target(&target)
        .host(&host)
        .build();
    println!("cargo:warning=OpenSSL installed in {}", built.lib_dir().display());
}
