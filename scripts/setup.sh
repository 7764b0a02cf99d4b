#!/usr/bin/env bash
# What building logalarm needs on a fresh Debian or Ubuntu machine that has only the Rust
# toolchain: a C compiler and linker and pkg-config; and what its curl:/airbrake: alarms open at
# run time: the system libcurl (TLS and SMTP; no headers needed). Installs what is missing with
# apt-get when run as root, else says what to install. Sourced by scripts/test.sh for its
# helpers; run alone before the first build:
#   scripts/setup.sh && cargo run --release -- --ini examples/demo.ini < examples/demo.log
set -euo pipefail

apt_ready=0
need_pkg() { # need_pkg COMMAND DEBIAN-PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing $1: install ${*:2}" >&2
    return 1
  fi
  if [ $apt_ready = 0 ]; then
    apt-get update -qq
    apt_ready=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null
}

need_so() { # need_so SONAME DEBIAN-PACKAGE... (the first package apt-get has)
  local libs p
  libs=$({ ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null || true)
  grep -q "[[:space:]]$1 " <<<"$libs" && return 0
  for p in "${@:2}"; do need_pkg __never_a_command__ "$p" 2>/dev/null && return 0; done
  echo "missing $1: install one of ${*:2}" >&2
  return 1
}

need_pkg cc gcc
need_pkg pkg-config pkg-config
# libcurl is opened at run time by curl:, airbrake: and webhook alarms (the build does not
# need it): Debian 13 calls the package libcurl4t64, Debian 12 and Ubuntu 22.04 libcurl4.
need_so libcurl.so.4 libcurl4t64 libcurl4
