#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine that has only the Rust toolchain.
# Installs what the tests need when it is missing, then: fmt, clippy, every test, the fuzz
# targets (built, regressions replayed, a short run each).
#   scripts/test.sh            everything
#   FUZZ_SECONDS=0 scripts/test.sh   skip the short fuzz runs (default 10 s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s (%ss into %s)\n' "$*" "$SECONDS" "${0##*/}"; }

say "dependencies"
# The build's own needs (cc, pkg-config), the libcurl curl: alarms open, and the helpers below.
source scripts/setup.sh
need_pkg python3 python3
need_pkg uwsgi uwsgi-core          # the oracle of the conformance tests, tests/config_diff.py and (its libpcre.so.3) tests/pcre8_diff.py
[ -e /usr/lib/uwsgi/plugins/alarm_curl_plugin.so ] || need_pkg __never_a_command__ uwsgi-plugin-alarm-curl
need_pkg openssl openssl           # TLS material for the HTTPS/SMTPS test servers
need_pkg xmllint libxml2-utils     # airbrake notices against the v2.3 schema
need_pkg espeak-ng espeak-ng       # speech alarms
need_pkg prosody prosody lua-unbound   # the XMPP server of tests/integration/xmpp.rs
need_pkg promtool prometheus       # --metrics: promtool check metrics, and the real Prometheus scraping it
need_pkg chromium chromium         # replay --report: the page drawn in headless Chromium
need_pkg prometheus-alertmanager prometheus-alertmanager   # alertmanager: alarms, the real receiver
need_pkg curl curl                 # reading Alertmanager's API back
need_pkg taskset util-linux        # one test runs logalarm on one CPU
need_pkg javac default-jdk-headless   # alarm-multiline: a real Java stack trace (java Trace.java)
need_pkg redis-server redis-server # alarm-cluster: the fleet's shared state (tests/integration/fleet.rs)
need_pkg nats-server nats-server   # --nats / --nats-out: JetStream shared by instances
# xmpp alarms load libstrophe at run time (logalarm builds without it)
[ -e /usr/lib/x86_64-linux-gnu/libstrophe.so.0 ] || ls /usr/lib/*/libstrophe.so.0 >/dev/null 2>&1 || need_pkg __never_a_command__ libstrophe0
if ! python3 -c "import aiosmtpd" 2>/dev/null; then   # the SMTP test server
  python3 -m pip install -q aiosmtpd 2>/dev/null || python3 -m pip install -q --break-system-packages aiosmtpd
fi
# The tests treat a missing server as a failure, not a skip, when CI is set.
export CI="${CI:-1}"
# The builds below are optimised (the 100 MB line and the property tests need it) but skip what
# only makes the shipped binary a little faster and costs most of the build: LTO over the whole
# program, one codegen unit, line tables (together about 40 % of the test build on two cores;
# PERF.md "CI time"). The same code is tested; `cargo build --release` outside this script
# still builds with Cargo.toml's profile.
# (The bench profile sets its own debug = 1: set here too, or `cargo bench` builds every
# dependency again.)
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_BENCH_DEBUG=0
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The static binary's C libraries (OpenSSL and libcurl for musl, about 150 s of C builds) are
# built in the background while the Rust builds below run: their long single-crate phases
# (the library, LTO links) leave a core idle. Waited for before any test runs.
say "background: OpenSSL and libcurl for the static binary (log: /tmp/logalarm-musl-deps.log)"
scripts/static-musl.sh --deps-only > /tmp/logalarm-musl-deps.log 2>&1 &
musl_deps=$!
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
wait_bg() { # wait_bg PID LOG WHAT
  wait "$1" || { echo "$3 failed:"; tail -30 "$2"; exit 1; }
}

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings

say "cargo test (release: the 100 MB line and the property tests run optimised)"
# The unit and integration tests, then the doc tests. The examples are benchmark tools (clippy
# above checks they compile; the embedding one is built and run below): not linked here.
cargo test --release --lib --tests --no-run
say "waiting for the background C builds (the static binary builds on them)"
wait_bg "$musl_deps" /tmp/logalarm-musl-deps.log "OpenSSL/libcurl for musl"

# The fuzz targets and the static binary are built from here on in the background, at the
# lowest priority: the tests below leave about one core idle (they wait for servers, uWSGI,
# Chromium) and the differentials run on one core; these builds take what is left (PERF.md
# "CI time": 1,342 s in a row on two Zen 1 cores). Different target directories (fuzz/target,
# target/musl): no build lock is shared with the tests' target/.
say "background, niced: the fuzz targets and the static binary (logs: /tmp/logalarm-fuzz-build.log, /tmp/logalarm-musl-build.log)"
fuzz_build() {
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet || echo "cargo-fuzz could not be installed: building the targets with plain cargo"
  fi
  if command -v cargo-fuzz >/dev/null 2>&1; then
    # --dev: unoptimised, with overflow checks and debug assertions (a 10 s run finds more per
    # input that way, and the build takes 75 s instead of 180 s; -O builds without overflow
    # checks, which hid an underflow in litscan::rarity until a --dev run).
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build --dev)
  else
    cargo build --manifest-path fuzz/Cargo.toml
  fi
}
nice -n 19 bash -c "$(declare -f fuzz_build); fuzz_build" > /tmp/logalarm-fuzz-build.log 2>&1 &
fuzz_bg=$!
nice -n 19 scripts/static-musl.sh --build-only > /tmp/logalarm-musl-build.log 2>&1 &
musl_build=$!

cargo test --release --lib --tests 2>&1 | tee /tmp/logalarm-test.log
grep -q "test result: FAILED" /tmp/logalarm-test.log && exit 1
cargo test --release --doc 2>&1 | tee -a /tmp/logalarm-test.log
grep -q "test result: FAILED" /tmp/logalarm-test.log && exit 1

say "the PCRE dialect against uWSGI's libpcre 8 (random rules and lines, differential)"
# libpcre.so.3 comes with uwsgi-core (uWSGI links it). The oracle (examples/pcre8_matrix) calls
# it natively: through Python's ctypes the calls took most of these two CPU minutes.
cargo build --release --quiet --example pcre8_matrix
oracle=(--oracle target/release/examples/pcre8_matrix)
# 30 seeds of 150 rules: ~12 s.
python3 tests/pcre8_diff.py --bin target/release/logalarm --seeds 30 "${oracle[@]}"
# The option stream (config logic, placeholders, the environment) against the real uWSGI.
python3 tests/config_diff.py --bin target/release/logalarm --seeds 300
# Rules written by others (Debian's logcheck and fail2ban rules, downloaded by
# scripts/debian-rules.py, never stored here) against the same libpcre 8, as written and each
# behind (?i): the matcher's large-set paths. ~20 s each.
if [ ! -s target/debian-rules/debian.txt ] || [ ! -s target/debian-rules/sagan.txt ] ||
   [ ! -s target/debian-rules/colour.txt ] || [ ! -s target/debian-rules/logwatch.txt ]; then
  python3 scripts/debian-rules.py target/debian-rules > /dev/null 2>&1 ||
    { apt-get update -qq; python3 scripts/debian-rules.py target/debian-rules > /dev/null; }
fi
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/debian-rules/debian.txt "${oracle[@]}"
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/debian-rules/debian.txt --ignore-case --seed 2 "${oracle[@]}"
# sagan-rules' 2,052 (written for other logs: firewalls, Windows events, web servers; rules
# anchored at a line's ends, long alternations of short words, alternations of class runs).
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/debian-rules/sagan.txt --seed 3 "${oracle[@]}"
# grc's and multitail's 1,175 colouring regexes (short, mostly without literals, matching
# often: many rules in the automaton part, class windows, storms of matches). ~30 s.
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/debian-rules/colour.txt --seed 4 "${oracle[@]}"
# logwatch's 4,076 Perl regexes (short literals, lazy quantifiers, back-references; a third
# of the corpus lines raise; 250 rules in the automaton part). ~30 s.
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/debian-rules/logwatch.txt --seed 6 "${oracle[@]}"
# Logstash's grok patterns, expanded (scripts/grok-rules.py, from PyPI): PCRE look-behind and
# atomic groups confirmed by PCRE, rules that match almost every line. ~40 s.
[ -s target/grok-rules/grok.txt ] || python3 scripts/grok-rules.py target/grok-rules > /dev/null
python3 tests/ruleset_diff.py --bin target/release/logalarm --rules target/grok-rules/grok.txt --seed 5 "${oracle[@]}"

say "cargo doc (no warnings) and the embedding example"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
# Output read whole before grep: `| grep -q` under pipefail fails when grep leaves early and the
# example's last write meets a closed pipe (CI stop 52 failed on exactly that).
embed_out=$(printf 'ok\nERROR disk full\n' | cargo run --release --quiet --example embed 2>&1)
grep -q "alarm disk: ERROR disk full" <<<"$embed_out" || { echo "the embedding example raised no alarm: $embed_out"; exit 1; }

say "benches compile"
cargo bench --no-run --quiet

say "fuzz targets (waiting for their build and the static binary's)"
wait_bg "$fuzz_bg" /tmp/logalarm-fuzz-build.log "the fuzz targets' build"
wait_bg "$musl_build" /tmp/logalarm-musl-build.log "the static musl build"
if command -v cargo-fuzz >/dev/null 2>&1; then
  secs=${FUZZ_SECONDS:-10}
  if [ "$secs" -gt 0 ]; then
    # The two targets side by side (libFuzzer runs one thread: one core each).
    declare -A fuzz_pid
    for t in config pipeline; do
      # New inputs go to fuzz/corpus (ignored by git); regressions/ is read as seeds only.
      mkdir -p fuzz/corpus/"$t"
      (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --dev "$t" corpus/"$t" regressions/"$t" -- \
         -max_total_time="$secs" -rss_limit_mb=2048 > /tmp/logalarm-fuzz-"$t".log 2>&1) &
      fuzz_pid[$t]=$!
    done
    fuzz_failed=0
    for t in config pipeline; do
      # A crash prints the panic and the input's path; copy that input into regressions/ to keep it.
      if ! wait "${fuzz_pid[$t]}"; then
        echo "fuzz target $t failed:"
        grep -m8 -E "panicked|SUMMARY|Test unit written|artifact" /tmp/logalarm-fuzz-"$t".log
        fuzz_failed=1
      else
        tail -1 /tmp/logalarm-fuzz-"$t".log
      fi
    done
    [ "$fuzz_failed" = 0 ] || exit 1
  fi
fi

say "package: the .deb (cargo deb) built, installed, run and purged; cargo install --path ."
scripts/package.sh

say "all tests passed"
