#!/usr/bin/env bash
# The soak: SIZE bytes (default 10G; K/M/G suffixes) of real log lines written by a chatty
# process that logalarm supervises (`-- CMD`), matched by 100 rules whose alarms use every
# local action kind (log:, cmd:, signal:, mule:, speech: when espeak-ng is installed). It
# checks that the log stream comes out intact (sha256 of the output without logalarm's own
# ALARM lines = sha256 of what the process wrote), that every alarm raised is accounted for
# (raised = ran + suppressed + dropped + discarded, per alarm, from the exit summary), and
# samples logalarm's RSS every second (flat: the last quarter's peak within 8 MiB of the
# first quarter's). Prints one line of figures per check; exit status 0 when all hold.
#
#   scripts/soak.sh 200M                   the variant the test suite runs
#   scripts/soak.sh 10G                    the figures in RELIABILITY.md
#   LOGALARM=path/to/logalarm scripts/soak.sh ...   (default: target/release/logalarm)
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-10G}"
case "$size" in
  *K) bytes=$(( ${size%K} << 10 )) ;;
  *M) bytes=$(( ${size%M} << 20 )) ;;
  *G) bytes=$(( ${size%G} << 30 )) ;;
  *) bytes=$size ;;
esac
bin="${LOGALARM:-target/release/logalarm}"
[ -x "$bin" ] || cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
corpus=tests/data/corpus/loghub

# The chatty process: the corpus over and over, cut at the last line end before SIZE bytes;
# what it wrote is hashed.
cat > "$work/chatty.sh" <<EOF
#!/usr/bin/env bash
while cat $PWD/$corpus/*.log; do :; done | head -c $bytes | head -n -1 | tee >(sha256sum | cut -d' ' -f1 > $work/in.sha)
wait
EOF
chmod +x "$work/chatty.sh"

# 100 rules; alarm kinds spread over them (one speech rule, rare, if espeak-ng is here).
args=(--alarm "logged log:SOAK" --alarm "ran cmd:cat > /dev/null"
      --alarm "signalled signal:28" --alarm "muled mule:1" --mule "cat > /dev/null"
      --alarm-freq 1 --alarm-grace 5)
kinds=(logged ran signalled muled)
i=0
while IFS= read -r rule; do
  args+=(--log-alarm "${kinds[$((i % 4))]} $rule")
  i=$((i + 1))
done < benches/rules/rules100.txt
if command -v espeak-ng >/dev/null 2>&1; then
  args+=(--alarm "spoken speech:en;wav=$work/soak.wav" --log-alarm "spoken session opened for user root")
fi

start=$(date +%s.%N)
(echo "$BASHPID" > "$work/pid"; exec "$bin" "${args[@]}" -- "$work/chatty.sh" 2> "$work/err") \
  | grep -v -a ' - ALARM: SOAK ' | tee >(sha256sum | cut -d' ' -f1 > "$work/out.sha") \
  | wc -c > "$work/out.bytes" &
sleep 0.2
pid=$(cat "$work/pid")
: > "$work/rss"
while kill -0 "$pid" 2>/dev/null; do
  awk '/VmRSS/ {print $2}' "/proc/$pid/status" >> "$work/rss" 2>/dev/null || true
  sleep 1
done
wait
end=$(date +%s.%N)
sleep 0.2

ok=0
in_sha=$(cat "$work/in.sha"); out_sha=$(cat "$work/out.sha")
secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
mbps=$(awk -v n="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", n / 1000000 / (s > 0 ? s : 1) }')
echo "soak: $(cat "$work/out.bytes") bytes of log lines in ${secs}s (${mbps} MB/s; a process writing them, 100 rules, every local action kind)"
if [ "$in_sha" = "$out_sha" ]; then
  echo "soak: stream intact: sha256 $out_sha = the process's"
else
  echo "soak: STREAM DIFFERS: in $in_sha, out $out_sha"; ok=1
fi
# Every alarm accounted for, per alarm.
if ! grep -q 'exit: "' "$work/err"; then
  echo "soak: NO EXIT SUMMARY"; tail -5 "$work/err"; ok=1
fi
while IFS= read -r line; do
  n() { echo "$line" | sed -E "s/.*[ (]$1 ([0-9]+).*/\1/"; }
  raised=$(n raised); ran=$(n ran); sup=$(n suppressed); drop=$(n dropped); disc=$(n discarded)
  name=$(echo "$line" | sed -E 's/.*exit: "([^"]*)".*/\1/')
  if [ $((ran + sup + drop + disc)) -ne "$raised" ]; then
    echo "soak: alarm $name NOT ACCOUNTED: $line"; ok=1
  else
    echo "soak: alarm $name: raised $raised = ran $ran + suppressed $sup + dropped $drop + discarded $disc"
  fi
done < <(grep 'exit: "' "$work/err")
# RSS flat: the last quarter's peak within 8 MiB of the first quarter's.
samples=$(wc -l < "$work/rss")
if [ "$samples" -ge 4 ]; then
  q=$((samples / 4))
  first=$(head -n "$q" "$work/rss" | sort -n | tail -1)
  last=$(tail -n "$q" "$work/rss" | sort -n | tail -1)
  peak=$(sort -n "$work/rss" | tail -1)
  echo "soak: RSS ${samples} samples: first quarter peak ${first} KiB, last quarter peak ${last} KiB, peak ${peak} KiB"
  if [ "$last" -gt $((first + 8192)) ]; then echo "soak: RSS GREW"; ok=1; fi
else
  echo "soak: RSS: ${samples} sample(s) (run too short to judge growth)"
fi
if grep -q -i 'panicked' "$work/err"; then echo "soak: PANIC"; grep -i panicked "$work/err"; ok=1; fi
exit $ok
