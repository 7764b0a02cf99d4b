#!/usr/bin/env bash
# Two "hosts" on one machine: two logalarms sharing anti-flood and digests on one Redis
# (alarm-cluster). Both see the same database outage; the fleet pages once, and one digest
# counts both hosts' lines.
#   examples/two-hosts.sh              (needs redis-server: apt-get install redis-server)
#   LOGALARM=path/to/logalarm examples/two-hosts.sh
set -euo pipefail
cd "$(dirname "$0")/.."
LOGALARM=${LOGALARM:-target/release/logalarm}
[ -x "$LOGALARM" ] || cargo build --release --quiet
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no > /dev/null &
redis=$!
trap 'kill $redis 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done

hosts=()
for host in web1 web2; do
  # Each host: 500 identical errors now, the stream kept open 3 s (the digest is due 2 s
  # after the first held line, and goes out through whichever host claims it first).
  { for _ in $(seq 500); do echo "ERROR db connection refused"; done; sleep 3; } |
    "$LOGALARM" --alarm "db log:" --log-alarm "db ERROR db" --alarm-freq 60 \
      --alarm-digest "db 2" --alarm-cluster "redis://127.0.0.1:$port/shop?id=$host" \
      > "$work/$host.out" 2> "$work/$host.err" &
  hosts+=($!)
done
wait "${hosts[@]}"
for host in web1 web2; do
  echo "== $host: $(grep -c '^ERROR' "$work/$host.out") lines passed; its alarms:"
  grep ' - ALARM: ' "$work/$host.out" || echo "(none: the other host paged)"
  grep 'alarm-cluster' "$work/$host.err"
done
