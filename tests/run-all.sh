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
#    ctest again;
# 4. builds every libFuzzer target (tests/fuzz/fuzz_*.c) with clang in
#    build-fuzz/ and runs each for a short time over a copy of its corpus
#    (EINLASS_FUZZ_SECONDS each; by default about 3 minutes in all, 10-30 s a
#    target); a crash, leak or UBSan report fails the run and leaves the input
#    in build-fuzz/crashes/.
#
# Developers may skip step 3 with EINLASS_SKIP_ASAN=1 and step 4 with
# EINLASS_SKIP_FUZZ=1 (CI never does), and pass ctest options such as -R unit/
# through CTEST_ARGS. The tests start their own
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
run_fuzz() { # every fuzz target for a while; the corpus in the tree stays as it is
    local dir=build-fuzz targets=(tests/fuzz/fuzz_*.c) failed=()
    echo "== build $dir (clang, libFuzzer + ASan + UBSan)"
    CC=clang cmake -S . -B "$dir" -DEINLASS_WERROR=ON -DEINLASS_FUZZ=ON -DEINLASS_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$dir" -j2 --target fuzzers
    local secs=${EINLASS_FUZZ_SECONDS:-$((180 / ${#targets[@]}))}
    [ "$secs" -gt 30 ] && [ -z "${EINLASS_FUZZ_SECONDS:-}" ] && secs=30
    [ "$secs" -lt 10 ] && [ -z "${EINLASS_FUZZ_SECONDS:-}" ] && secs=10
    mkdir -p "$dir/crashes"
    for src in "${targets[@]}"; do
        local name corpus work log
        name=$(basename "$src" .c)
        corpus=tests/fuzz/corpus/${name#fuzz_}
        work=$(mktemp -d "$dir/corpus-$name.XXXXXX")
        [ -d "$corpus" ] && cp -R "$corpus/." "$work/"
        log=$dir/$name.log
        echo "== fuzz $name for ${secs}s over $corpus"
        if "$dir/tests/fuzz/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$dir/crashes/$name-" -print_final_stats=1 "$work" >"$log" 2>&1; then
            grep -E '^stat::number_of_executed_units|^Done ' "$log" | tail -1
        else
            echo "FAIL $name: see $log; the input is in $dir/crashes/ (add it to $corpus/)"
            tail -40 "$log"
            failed+=("$name")
        fi
        rm -rf "$work"
    done
    [ ${#failed[@]} -eq 0 ] || { echo "== fuzzing found problems: ${failed[*]}"; return 1; }
}

if [ "${EINLASS_SKIP_FUZZ:-0}" = 1 ] && [ "${CI:-}" != true ]; then
    echo "== fuzzing skipped (EINLASS_SKIP_FUZZ=1)"
else
    run_fuzz
fi
echo "== all tests passed"
