#!/usr/bin/env bash
# bench/demo.sh - the booking portal behind einlass, on this machine, in one command.
#
#   bash bench/demo.sh
#
# Installs the build packages if missing, builds build/einlass, creates a
# secret at first run (var/secret, mode 600; var/ is runtime state, never
# committed), writes var/demo.conf, starts bench/portal.py on a free port and
# einlass in the foreground on 127.0.0.1:8080 (admin API on 127.0.0.1:9090).
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash tests/install-deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target einlass

mkdir -p var
chmod 700 var
if [ ! -s var/secret ]; then
    (umask 077 && openssl rand -hex 32 > var/secret)
fi

portal_pid=
cleanup() {
    if [ -n "$portal_pid" ]; then
        kill "$portal_pid" 2>/dev/null || true
        wait "$portal_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

python3 bench/portal.py --port 0 --db-connections 4 --db-ms 20 > var/portal.out &
portal_pid=$!
for _ in $(seq 50); do
    grep -q 'listening' var/portal.out 2>/dev/null && break
    sleep 0.1
done
portal_port=$(sed -n 's/^portal listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' var/portal.out)
[ -n "$portal_port" ] || { echo "the portal did not start" >&2; exit 1; }

template=
if [ -f conf/waiting-room.html ]; then
    template="template = $root/conf/waiting-room.html"
fi
cat > var/demo.conf <<CONF
; written by bench/demo.sh at every start; edit bench/demo.sh instead
[server]
listen = 127.0.0.1:8080
admin_listen = 127.0.0.1:9090

[backend]
address = 127.0.0.1:$portal_port

[trigger]
latency_metric = db
queue_above_ms = 200
release_below_ms = 80
release_hold_ms = 5000

[room]
mode = auto
store = memory
secret_file = secret
admit_per_s = 2
poll_s = 3
$template

[route cancel]
match = POST /appointments/*/cancel
action = bypass
CONF

cat <<MSG

Open http://127.0.0.1:8080/ — admin: curl http://127.0.0.1:9090/status — force the room on: curl -X POST -d on http://127.0.0.1:9090/mode
Slow the database down instead: curl -X POST -d 400 http://127.0.0.1:$portal_port/_portal/db-ms
Ctrl-C stops einlass and the portal.

MSG
status=0
build/einlass -c var/demo.conf || status=$?
exit "$status"
