#!/bin/sh
# redis_memory.sh - Redis memory taken by waiting tickets: joins N tickets
# through the real join script (src/store_redis.c) into a fresh room of a
# private redis-server and prints INFO memory's used_memory delta.
# Usage: bench/redis_memory.sh [N ...]   (default: 1000000 10000000)
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

cc -std=c11 -D_GNU_SOURCE -O2 -I"$src/include" "$src/src/common.c" "$src/src/redis_conn.c" "$src/src/store_redis.c" \
    "$src/bench/redis_memory.c" -lhiredis -levent -lcrypto -lm -o "$tmp/redis_memory"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    >"$tmp/redis.log" 2>&1 &
pid=$!
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "redis-server did not start" >&2; exit 1; }
    sleep 0.1
done

used() { redis-cli -p "$port" info memory | tr -d '\r' | sed -n 's/^used_memory://p'; }

[ $# -gt 0 ] || set -- 1000000 10000000
printf '%12s %14s %12s %10s  %s\n' tickets used_memory_delta MB bytes/tkt throughput
for n in "$@"; do
    room="bench-$n"
    before=$(used)
    out=$(EL_LOG=quiet "$tmp/redis_memory" "127.0.0.1:$port" "$room" "$n" 2>/dev/null)
    after=$(used)
    delta=$((after - before))
    printf '%12s %14s %12s %10s  %s\n' "$n" "$delta" \
        "$(awk "BEGIN{printf \"%.1f\", $delta/1048576}")" \
        "$(awk "BEGIN{printf \"%.2f\", $delta/$n}")" "$out"
    redis-cli -p "$port" info commandstats | grep -i eval >&2 || true
    waiting=$(redis-cli -p "$port" hget "einlass:{$room}:meter" w0)
    [ "$waiting" = "$n" ] || { echo "room $room holds $waiting waiting, not $n" >&2; exit 1; }
done
