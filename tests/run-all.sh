#!/usr/bin/env bash
# tests/run-all.sh - install what is needed, build einlass, run every test.
#
# The one command for a new user and for CI (.ci/run calls exactly this):
#
#   bash tests/run-all.sh
#
# 1. installs the Debian packages (tests/install-deps.sh test; apt-get as
#    root, or through sudo), skipping those already there;
# 2. builds with -DEINLASS_WERROR=ON in build-test/ and runs ctest;
# 3. builds with -DEINLASS_SANITIZE=ON (ASan + UBSan) in build-asan/ and runs
#    ctest again.
#
# Developers may skip step 3 with EINLASS_SKIP_ASAN=1 (CI never does) and pass
# ctest options such as -R unit/ through CTEST_ARGS. The tests start their own
# servers (redis-server included) on free ports; no system service is used.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/install-deps.sh test

run_suite() { # run_suite BUILD_DIR CMAKE_ARGS...
    local dir=$1
    shift
    echo "== build $dir ($*)"
    cmake -S . -B "$dir" -DEINLASS_WERROR=ON "$@"
    cmake --build "$dir" -j2
    echo "== test $dir"
    # shellcheck disable=SC2086
    (cd "$dir" && ctest --output-on-failure --no-tests=error ${CTEST_ARGS:-})
}

run_suite build-test
if [ "${EINLASS_SKIP_ASAN:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "== ASan + UBSan run skipped (EINLASS_SKIP_ASAN=1)"
else
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    run_suite build-asan -DEINLASS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
fi
echo "== all tests passed"
