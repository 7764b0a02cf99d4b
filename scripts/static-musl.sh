#!/usr/bin/env bash
# Build the static musl binary and test it against real servers.
#   scripts/static-musl.sh      target/dist/logalarm-VERSION-x86_64-unknown-linux-musl
#   scripts/static-musl.sh --deps-only     only pieces 1 and 2 (scripts/test.sh builds them
#                                          while the Rust builds leave a core idle)
#   scripts/static-musl.sh --build-only    pieces 1 to 3, no tests
#
# logalarm's curl: alarms need a libcurl with TLS and SMTP. curl-sys's own static build has no
# SMTP (it defines CURL_DISABLE_SMTP), so this script builds the pieces itself, all from
# sources the Rust registry already serves:
#   1. OpenSSL, static, for musl: openssl-src (the source openssl-sys vendors), driven by the
#      small crate in dist/musl/openssl;
#   2. libcurl, static, from the curl source inside the curl-sys crate logalarm locks (the same
#      curl version a vendored build would have), with CMake and musl-gcc: HTTP(S) and SMTP(S)
#      only, OpenSSL, threaded resolver, CA bundle /etc/ssl/certs/ca-certificates.crt
#      (SSL_CERT_FILE / SSL_CERT_DIR override it at run time, as for the dynamic build);
#   3. logalarm for x86_64-unknown-linux-musl, curl-sys finding that libcurl with pkg-config.
# Then it checks the binary is static, runs it, and runs the integration tests of every
# delivery (HTTP, HTTPS with verification, SMTP, SMTPS, STARTTLS, airbrake) and of the fleet
# (alarm-cluster on Redis, with TLS; --nats/--nats-out on JetStream) on it.
# xmpp: alarms need libstrophe, loaded at run time, which a static binary cannot: that alarm
# is refused at start-up by this build with that reason (use the .deb).
# Pieces 1 and 2 are kept in target/musl-deps and rebuilt when their inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n== %s (%ss into %s)\n' "$*" "$SECONDS" "${0##*/}"; }

source scripts/setup.sh
need_pkg musl-gcc musl-tools
need_pkg cmake cmake
need_pkg make make
need_pkg perl perl     # OpenSSL's Configure
need_pkg file file
TARGET=x86_64-unknown-linux-musl
if ! grep -qx "$TARGET" <<<"$(rustup target list --installed 2>/dev/null)"; then
  rustup target add "$TARGET" || { echo "cannot add the Rust target $TARGET (rustup target add)"; exit 1; }
fi
deps=$PWD/target/musl-deps
mkdir -p "$deps"

say "OpenSSL for musl (openssl-src)"
LOGALARM_OPENSSL_OUT=$deps/openssl cargo build --release --quiet --target "$TARGET" \
  --manifest-path dist/musl/openssl/Cargo.toml --target-dir "$deps/target"
ssl=$deps/openssl/install
[ -f "$ssl/lib/libssl.a" ] && [ -f "$ssl/lib/pkgconfig/openssl.pc" ] || { echo "OpenSSL was not built in $ssl"; exit 1; }

say "libcurl for musl (curl-sys's curl source, CMake)"
curlsrc=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "curl-sys"))')/curl
[ -f "$curlsrc/CMakeLists.txt" ] || { echo "no curl source in $curlsrc"; exit 1; }
stamp="$curlsrc $(stat -c %Y "$ssl/lib/libssl.a") $(sha256sum "$0" | cut -c1-16)"
if [ "$(cat "$deps/curl.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$deps/curl-build" "$deps/curl"
  CC=musl-gcc cmake -S "$curlsrc" -B "$deps/curl-build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$deps/curl" -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON \
    -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF -DBUILD_EXAMPLES=OFF -DBUILD_LIBCURL_DOCS=OFF \
    -DBUILD_MISC_DOCS=OFF -DENABLE_CURL_MANUAL=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Perl=ON \
    -DCURL_USE_OPENSSL=ON -DOPENSSL_ROOT_DIR="$ssl" -DOPENSSL_USE_STATIC_LIBS=ON \
    -DCURL_ZLIB=OFF -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF \
    -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF -DENABLE_THREADED_RESOLVER=ON \
    -DCURL_DISABLE_LDAP=ON -DCURL_DISABLE_LDAPS=ON -DCURL_DISABLE_DICT=ON \
    -DCURL_DISABLE_GOPHER=ON -DCURL_DISABLE_IMAP=ON -DCURL_DISABLE_POP3=ON \
    -DCURL_DISABLE_RTSP=ON -DCURL_DISABLE_TELNET=ON -DCURL_DISABLE_TFTP=ON \
    -DCURL_DISABLE_MQTT=ON -DCURL_DISABLE_FTP=ON -DCURL_DISABLE_FILE=ON \
    -DCURL_DISABLE_IPFS=ON -DCURL_DISABLE_SMB=ON \
    -DCURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt -DCURL_CA_PATH=/etc/ssl/certs \
    > "$deps/curl-cmake.log" 2>&1 || { tail -20 "$deps/curl-cmake.log"; exit 1; }
  make -C "$deps/curl-build" -j"$(nproc)" install > "$deps/curl-make.log" 2>&1 \
    || { tail -20 "$deps/curl-make.log"; exit 1; }
  echo "$stamp" > "$deps/curl.stamp"
fi
protocols=$(grep '^supported_protocols=' "$deps/curl/lib/pkgconfig/libcurl.pc")
echo "$protocols"
for p in HTTPS SMTP SMTPS; do
  grep -qw "$p" <<<"$protocols" || { echo "the musl libcurl lacks $p"; exit 1; }
done
[ "${1:-}" = --deps-only ] && exit 0

say "logalarm for $TARGET"
# PKG_CONFIG_LIBDIR: only these two libraries are visible to pkg-config (never the host's
# glibc ones); logalarm's build.rs stops the build if curl-sys bundled its copy instead.
# --target-dir target/musl: a cross build locks the host's target/release for its whole
# length; its own directory lets scripts/test.sh build it while the tests run from target/.
PKG_CONFIG_LIBDIR="$deps/curl/lib/pkgconfig:$ssl/lib/pkgconfig" PKG_CONFIG_ALLOW_CROSS=1 \
  PKG_CONFIG_ALL_STATIC=1 cargo build --release --quiet --locked --target "$TARGET" \
  --target-dir target/musl
built=target/musl/$TARGET/release/logalarm
version=$("$built" --version | cut -d' ' -f2)
mkdir -p target/dist
out=target/dist/logalarm-$version-$TARGET
objcopy --strip-debug "$built" "$out"
file "$out"
grep -q 'static' <<<"$(file "$out")" || { echo "$out is not statically linked"; exit 1; }
if grep -q NEEDED <<<"$(readelf -d "$out")"; then echo "$out needs shared libraries: $(readelf -d "$out" | grep NEEDED)"; exit 1; fi
ls -l "$out"

[ "${1:-}" = --build-only ] && exit 0

say "smoke test of the static binary"
"$out" --version
o=$(printf 'ok\nERROR disk full\n' | "$out" --alarm "a log:" --log-alarm "a ERROR")
grep -q "ALARM: ERROR disk full" <<<"$o" || { echo "no alarm from the static binary: $o"; exit 1; }
# xmpp: refused at start-up, with the reason.
if o=$("$out" --alarm "x xmpp:alarm@example.com;pw;to@example.com" --log-alarm "x ERROR" < /dev/null 2>&1); then
  echo "the static binary accepted an xmpp: alarm: $o"; exit 1
fi
grep -q "static binary" <<<"$o" || { echo "xmpp: refused without the reason: $o"; exit 1; }

say "delivery and fleet tests on the static binary (real HTTP, HTTPS, SMTP, SMTPS, Redis, NATS servers)"
# Every delivery; of the fleet, what the static build could change: rustls's roots and TLS to
# Redis, plain Redis, the JetStream client (the fleet's other tests exercise logic, not the build).
LOGALARM_TEST_BIN=$PWD/$out cargo test --release --quiet --test integration -- curl:: overflow::spool \
  fleet::the_fleet_over_tls fleet::a_storm_on_three fleet::a_jetstream_stream
say "static binary ok: $out"
