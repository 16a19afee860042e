#!/usr/bin/env bash
# tests/install-deps.sh PROFILE... - install the Debian 12 packages einlass needs.
#
#   build   compile einlass and run its demo
#   test    build + what the test suite uses (cmocka, redis-server, a browser,
#           promtool from prometheus, clang with libFuzzer, dpkg-dev and file
#           for cpack -G DEB in test_package)
#   bench   nginx, HAProxy, wrk and gnuplot for bench/proxy.py and bench/rush
#
# Packages already installed are skipped, so a second run needs no network.
# Runs apt-get as root, or through sudo otherwise. Nothing here starts a
# service: the tests start their own redis-server on a free port (the
# prometheus package enables its unit, but nothing starts it here; the tests
# use only its promtool).
set -euo pipefail

build=(build-essential cmake pkg-config libevent-dev libssl-dev libhiredis-dev
       libinih-dev libsystemd-dev libcmocka-dev python3 curl openssl)
pkgs=()
for profile in "$@"; do
    case "$profile" in
    build) pkgs+=("${build[@]}") ;;
    test)  pkgs+=("${build[@]}" redis-server chromium prometheus clang dpkg-dev file) ;;
    bench) pkgs+=(nginx haproxy wrk gnuplot-nox) ;;
    *) echo "usage: $0 build|test|bench..." >&2; exit 2 ;;
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
