#!/usr/bin/env bash
# Build the Debian package and smoke-test it, plus `cargo install --path .`.
#   scripts/package.sh          build target/dist/logalarm_*.deb and test it
# The man page and the shell completions are generated from the option table by the binary
# itself (`logalarm man`, `logalarm completions bash|zsh|fish`). As root, the package is
# installed with apt-get (its dependencies resolved), exercised (the binary, `check` of the
# shipped ini, the man page, `systemd-analyze verify` of the unit), then purged. Otherwise its
# contents are unpacked with dpkg-deb -x and the binary run from there.
#
# Then scripts/static-musl.sh builds and tests the static musl binary (its own libcurl with TLS
# and SMTP; see that script).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n== %s (%ss into %s)\n' "$*" "$SECONDS" "${0##*/}"; }

source scripts/setup.sh
need_pkg dpkg-deb dpkg
need_pkg dpkg-shlibdeps dpkg-dev   # cargo deb's $auto dependencies
need_pkg man man-db
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked --quiet

say "build and generate the man page and completions"
cargo build --release --quiet
bin=target/release/logalarm
mkdir -p target/dist
"$bin" man | gzip -9n > target/dist/logalarm.1.gz
"$bin" completions bash > target/dist/logalarm.bash
"$bin" completions zsh > target/dist/_logalarm
"$bin" completions fish > target/dist/logalarm.fish
bash -n target/dist/logalarm.bash
need_pkg zsh zsh && zsh -n target/dist/_logalarm
need_pkg fish fish && fish -n target/dist/logalarm.fish

say "cargo deb"
rm -f target/dist/logalarm_*.deb
cargo deb --no-build --quiet -o target/dist/
deb=$(ls target/dist/logalarm_*.deb)
dpkg-deb --info "$deb" | grep -E "Package|Version|Depends"
contents=$(dpkg-deb --contents "$deb")
for f in ./usr/bin/logalarm ./usr/share/man/man1/logalarm.1.gz ./etc/logalarm/logalarm.ini \
         ./usr/lib/systemd/system/logalarm.service ./usr/share/bash-completion/completions/logalarm; do
  grep -q " $f\$" <<<"$contents" || { echo "missing from the package: $f"; exit 1; }
done

say "smoke test of the package"
smoke() { # smoke BIN
  "$1" --version
  out=$(printf 'ok\nERROR disk full\n' | "$1" --alarm "a log:" --log-alarm "a ERROR")
  grep -q "ALARM: ERROR disk full" <<<"$out" || { echo "no alarm from the packaged binary: $out"; exit 1; }
}
if [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
  smoke /usr/bin/logalarm
  /usr/bin/logalarm check --ini /etc/logalarm/logalarm.ini > /dev/null
  man -w logalarm
  if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify /usr/lib/systemd/system/logalarm.service
  fi
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq logalarm >/dev/null
  [ ! -e /usr/bin/logalarm ] || { echo "purge left /usr/bin/logalarm"; exit 1; }
else
  dir=$(mktemp -d)
  dpkg-deb -x "$deb" "$dir"
  smoke "$dir/usr/bin/logalarm"
  "$dir/usr/bin/logalarm" check --ini "$dir/etc/logalarm/logalarm.ini" > /dev/null
  rm -rf "$dir"
fi

say "cargo install --path ."
root=$(mktemp -d)
# (--target-dir target: the release build above is reused, as `cargo install` on a fresh
# machine would build it; the test is that installing works, not building twice. --locked:
# without it cargo install resolves the dependencies anew and builds newer versions.)
cargo install --path . --root "$root" --quiet --locked --target-dir target
smoke "$root/bin/logalarm"
rm -rf "$root"

say "package ok: $deb"

scripts/static-musl.sh
