#!/usr/bin/env bash
# The fleet's figures (SCALE.md), on loopback, with a real redis-server and nats-server:
#   scripts/bench-fleet.sh                 everything
#   CORPUS=FILE scripts/bench-fleet.sh     the log path's throughput on FILE (default: 1.2 M
#                                          generated lines, 1 % of them raising)
# Prints one line per figure:
#   1. alarm-cluster decisions per second, one lane: distinct messages (each raising line waits
#      for its answer), then one message repeated (held from the fleet's last answer);
#   2. distinct messages with 8 alarms on 8 lanes (the cluster thread pipelines what they ask
#      at once);
#   3. the log path's throughput with and without alarm-cluster (only raising lines ask);
#   4. NATS: --nats-out publishing 1 M lines through JetStream; --nats consumed by one instance,
#      then by three sharing a durable consumer.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
command -v redis-server >/dev/null || { echo "redis-server is missing (apt-get install redis-server)"; exit 1; }
command -v nats-server >/dev/null || { echo "nats-server is missing (apt-get install nats-server)"; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/logalarm
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; exit 1; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$1/($3-$2):,.0f}')"; }

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
pids+=($!)
wait_port "$RPORT"
CLUSTER="redis://127.0.0.1:$RPORT/bench-"
echo "redis-server $(redis-server --version | grep -o 'v=[^ ]*'), nats-server $(nats-server --version), $(nproc) cores, $(date -u +%F)"

# 1. One lane: 20,000 raising lines, a log: alarm; distinct messages (every line asks), then
# one message (anti-flood holds all but one; held lines need no round trip).
seq 20000 | sed 's/.*/ERROR db down &/' > "$WORK/distinct.log"
seq 100000 | sed 's/.*/ERROR db down/' > "$WORK/storm.log"
for run in $(seq "$RUNS"); do
  t0=$(now)
  "$BIN" --alarm "a log:" --log-alarm "a ERROR" --alarm-freq 60 --alarm-cluster "${CLUSTER}d$run" \
    < "$WORK/distinct.log" > /dev/null 2> "$WORK/err"
  t1=$(now)
  echo "decisions, 1 lane, distinct messages: $(rate 20000 "$t0" "$t1")/s ($(grep -o 'in [0-9]* round trip' "$WORK/err"))"
  t0=$(now)
  "$BIN" --alarm "a log:" --log-alarm "a ERROR" --alarm-freq 60 --alarm-cluster "${CLUSTER}one$run" \
    < "$WORK/storm.log" > /dev/null 2> "$WORK/err"
  t1=$(now)
  echo "decisions, 1 lane, one message: $(rate 100000 "$t0" "$t1")/s ($(grep -o 'in [0-9]* round trip' "$WORK/err"))"
done

# 2. Eight lanes: 8 cmd: alarms (a lane each) on the same lines, each with a threshold never
# reached (every line is counted on the server, nothing runs): the time is the decisions'.
args=()
for i in $(seq 8); do args+=(--alarm "a$i cmd:true" --log-alarm "a$i ERROR" --alarm-threshold "a$i 1000000 60"); done
for run in $(seq "$RUNS"); do
  t0=$(now)
  "$BIN" "${args[@]}" --alarm-freq 60 --alarm-cluster "${CLUSTER}eight$run" \
    < "$WORK/distinct.log" > /dev/null 2> "$WORK/err"
  t1=$(now)
  line=$(grep 'alarm-cluster:' "$WORK/err")
  d=$(sed -E 's/.*alarm-cluster: ([0-9]+) decision.*/\1/' <<<"$line")
  r=$(sed -E 's/.* in ([0-9]+) round trip.*/\1/' <<<"$line")
  echo "decisions, 8 lanes, distinct messages: $(rate "$d" "$t0" "$t1")/s, $(python3 -c "print(f'{$d/$r:.1f}')") per round trip"
done

# 3. The log path: 1.2 M lines, 1 % raising (distinct messages by 100 keys), 10 rules.
if [ -n "${CORPUS:-}" ]; then
  cp "$CORPUS" "$WORK/path.log"
else
  python3 - "$WORK/path.log" <<'PY'
import sys, random
random.seed(7)
with open(sys.argv[1], "w") as f:
    for i in range(1_200_000):
        if i % 100 == 0:
            f.write(f"2026-12-02 10:00:{i%60:02d} ERROR upstream {i%100} timed out after 30s\n")
        else:
            f.write(f"2026-12-02 10:00:{i%60:02d} INFO GET /api/v1/items/{random.randrange(10**6)} 200 {random.randrange(900)}ms\n")
PY
fi
rules=(--alarm "a log:" --log-alarm "a ERROR upstream" --log-alarm "a (?i)out of memory"
  --log-alarm "a segfault at [0-9a-f]+" --log-alarm "a Connection refused" --log-alarm "a panic"
  --log-alarm "a FATAL" --log-alarm "a Traceback" --log-alarm "a deadlock detected"
  --log-alarm "a disk full" --log-alarm "a java\\.net\\.\\w+Exception")
size=$(stat -c %s "$WORK/path.log")
for run in $(seq "$RUNS"); do
  for mode in local cluster; do
    extra=()
    [ "$mode" = cluster ] && extra=(--alarm-cluster "${CLUSTER}path$run")
    t0=$(now)
    "$BIN" "${rules[@]}" "${extra[@]}" < "$WORK/path.log" > /dev/null 2> "$WORK/err"
    t1=$(now)
    raised=$(grep -o -m1 '[0-9]* alarms raised' "$WORK/err")
    echo "log path, $mode: $(python3 -c "print(f'{$size/1e6/($t1-$t0):,.0f}')") MB/s ($raised)"
  done
done

# 4. NATS JetStream.
NPORT=$(free_port)
mkdir -p "$WORK/js"
nats-server -js -a 127.0.0.1 -p "$NPORT" -sd "$WORK/js" >/dev/null 2>&1 &
pids+=($!)
wait_port "$NPORT"
NURL=nats://127.0.0.1:$NPORT
seq 1 1000000 | sed 's/^/line /' > "$WORK/m.log"
consume() { # consume N STREAM: N instances until its 1 M lines passed; prints lines/s
  local n=$1 st=$2 outs=() ps=()
  local t0; t0=$(now)
  for i in $(seq "$n"); do
    "$BIN" --nats "$NURL,$st,workers" < /dev/null > "$WORK/c$i.out" 2>/dev/null &
    ps+=($!); outs+=("$WORK/c$i.out")
  done
  while [ "$(cat "${outs[@]}" | wc -l)" -lt 1000000 ]; do sleep 0.02; done
  local t1; t1=$(now)
  kill -TERM "${ps[@]}"; wait "${ps[@]}" 2>/dev/null || true
  rate 1000000 "$t0" "$t1"
}
for run in $(seq "$RUNS"); do
  t0=$(now)
  "$BIN" --nats-out "$NURL,logs.a$run,stream=A$run" < "$WORK/m.log" > /dev/null 2>/dev/null
  t1=$(now)
  echo "nats-out (JetStream, acknowledged): $(rate 1000000 "$t0" "$t1") lines/s"
  echo "nats input, 1 instance: $(consume 1 "A$run") lines/s"
  "$BIN" --nats-out "$NURL,logs.b$run,stream=B$run" < "$WORK/m.log" > /dev/null 2>/dev/null
  echo "nats input, 3 instances: $(consume 3 "B$run") lines/s"
done
