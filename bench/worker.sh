#!/usr/bin/env bash
# bench/worker.sh — throughput of the worker protocol (docs/worker.md): s2s-score with
# `--lm 'worker:s2s-lm serve MODEL'` (the same n-gram model in a second process, requests
# pipelined over pipes) against the in-process `--lm ngram:MODEL` backend on the same items, same
# run. Both give identical pairs.jsonl (checked here), so the difference is the protocol's cost.
#
# Data: StoryCloze Spring 2016 val imported with s2s-import, repeated COPIES times (default 10)
# under new ids; t2t; model: word 3-gram trained by s2s-lm on context + right ending.
# Figures: candidate requests per second (wall), median of REPS (3) runs, each into a fresh
# output directory (no score cache); CPU seconds (user + sys) of all processes and of the
# s2s-score process alone; requests per CPU second of s2s-score is the rate at which it could
# feed a model that had a core of its own, whatever else the machine was doing.
# Extra row: `s2s-lm serve` alone on the recorded request lines (file in, /dev/null out): what
# the worker side can take when nobody waits on it.
# Goal (issue #8): at least 20 000 candidate requests/s, so the scorer is never what a real model
# waits for. On a shared machine look at the load printed first: two processes need two cores.
# Usage: bench/worker.sh [BUILD_DIR]   (env: COPIES, REPS, S2S_WORKER_CAPACITY)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
BIN=$BUILD/bin
COPIES=${COPIES:-10}
REPS=${REPS:-3}
CORP=${S2S_SHARED:-$SRC/../shared}/corpora/storycloze_spring2016
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for t in s2s-import s2s-lm s2s-score; do
  [ -x "$BIN/$t" ] || { echo "bench/worker.sh: build first ($BIN/$t)" >&2; exit 3; }
done
[ -x /usr/bin/time ] || { echo "bench/worker.sh: needs /usr/bin/time (Debian package time)" >&2; exit 3; }
cd "$TMP"
"$BIN/s2s-import" storycloze "$CORP"/cloze_test_val__spring2016.csv > one.jsonl 2>/dev/null
python3 - "$COPIES" <<'PY'
import json, sys
items = [json.loads(l) for l in open("one.jsonl")]
with open("items.jsonl", "w") as f:
    for c in range(int(sys.argv[1])):
        for it in items:
            it = dict(it); it["id"] = f"{it['id']}-{c}"
            f.write(json.dumps(it) + "\n")
PY
"$BIN/s2s-lm" text --what ctx+right one.jsonl 2>/dev/null | "$BIN/s2s-lm" train --order 3 -o words.arpa 2>/dev/null
nitems=$(wc -l < items.jsonl)
nreq=$((nitems * 2))

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run=0
# measure NAME LM: REPS runs; leaves "wall cpu-total cpu-scorer" medians in $NAME.t. For a worker
# the child's own CPU is taken by /usr/bin/time inside the command (wc.N), the scorer's is the rest.
measure() {
  local name=$1 lm=$2
  for _ in $(seq "$REPS"); do
    run=$((run + 1))
    echo "0 0" > "wc.$run"
    /usr/bin/time -f '%e %U %S' -o "t.$run" "$BIN/s2s-score" --lm "${lm//@RUN@/$run}" --bootstrap 0 \
      -o "out.$name.$run" items.jsonl >/dev/null 2>"err.$run" \
      || { cat "err.$run" >&2; echo "bench/worker.sh: $name failed" >&2; exit 1; }
    cp "out.$name.$run/pairs.jsonl" "pairs.$name.jsonl"
    rm -rf "out.$name.$run"
    echo "$(tail -1 "t.$run") $(tail -1 "wc.$run")"
  done > "$name.runs"
  echo "$(awk '{print $1}' "$name.runs" | median) $(awk '{print $2 + $3}' "$name.runs" | median)" \
       "$(awk '{print $2 + $3 - $4 - $5}' "$name.runs" | median)" > "$name.t"
}
echo "load before: $(uptime | sed 's/.*load average: //')"
measure ngram ngram:words.arpa
measure worker "worker:/usr/bin/time -f '%U %S' -o $TMP/wc.@RUN@ $BIN/s2s-lm serve words.arpa"
cmp -s pairs.ngram.jsonl pairs.worker.jsonl || { echo "bench/worker.sh: worker and in-process pairs.jsonl differ" >&2; exit 1; }
# the request lines as the scorer sends them, then the server alone on them
rm -rf rec && "$BIN/s2s-score" --lm "worker:tee $TMP/requests.txt | $BIN/s2s-lm serve words.arpa" --bootstrap 0 -o rec items.jsonl >/dev/null 2>&1
for _ in $(seq "$REPS"); do
  /usr/bin/time -f '%e %U %S' -o t.serve "$BIN/s2s-lm" serve words.arpa < requests.txt > /dev/null
  tail -1 t.serve
done > serve.runs
echo "$(awk '{print $1}' serve.runs | median) $(awk '{print $2 + $3}' serve.runs | median)" > serve.t
echo "load after: $(uptime | sed 's/.*load average: //')"

read -r w_ng c_ng s_ng < ngram.t
read -r w_wk c_wk s_wk < worker.t
read -r w_sv c_sv < serve.t
rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }
echo
echo "items: $nitems (StoryCloze val x$COPIES), t2t candidate requests: $nreq; pairs.jsonl identical: yes"
echo
echo "| what | wall s (median of $REPS) | candidate requests/s | CPU s, all processes | CPU s, s2s-score process | requests per s2s-score CPU s |"
echo "| --- | --- | --- | --- | --- | --- |"
printf '| anchor: s2s-score --lm ngram:MODEL (in process) | %.3f | %s | %.2f | %.2f | %s |\n' "$w_ng" "$(rate "$nreq" "$w_ng")" "$c_ng" "$s_ng" "$(rate "$nreq" "$s_ng")"
printf '| s2s-score --lm worker:s2s-lm serve MODEL (pipes, pipelined) | %.3f | %s | %.2f | %.2f | %s |\n' "$w_wk" "$(rate "$nreq" "$w_wk")" "$c_wk" "$s_wk" "$(rate "$nreq" "$s_wk")"
printf '| ratio worker / in process (requests/s) | | %.2f | | | |\n' "$(echo "$w_ng / $w_wk" | bc -l)"
printf '| s2s-lm serve alone on the recorded requests (file in, /dev/null out) | %.3f | %s | %.2f | - | - |\n' "$w_sv" "$(rate "$nreq" "$w_sv")" "$c_sv"
