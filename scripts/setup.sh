#!/usr/bin/env bash
# What building logalarm needs on a fresh Debian or Ubuntu machine that has only the Rust
# toolchain: a C compiler and linker, pkg-config, and the system libcurl with its headers (TLS
# and SMTP; build.rs stops the build without them rather than let curl-sys bundle a libcurl
# that has no SMTP). Installs what is missing with apt-get when run as root, else says what to
# install. Sourced by scripts/test.sh for its helpers; run alone before the first build:
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

need_lib() { # need_lib PKG-CONFIG-NAME DEBIAN-PACKAGE
  pkg-config --exists "$1" 2>/dev/null && return 0
  need_pkg __never_a_command__ "$2"
}

need_pkg cc gcc
need_pkg pkg-config pkg-config
need_lib libcurl libcurl4-openssl-dev
