#!/usr/bin/env bash
# The main job on the built-in defaults: build the samples dataset from data/ (import, synth,
# resample, units, shards, verify), train the built-in n-gram models on half of the items, score
# the other half in t2t and s2s, print the report and the chart. With WORKER set to a worker
# command (docs/worker.md), the same items are also scored by that model in t2t, s2t and s2s:
#   WORKER='python3 scorer/s2s_worker.py --model hf:gpt2' bash scripts/demo.sh
# Output under ${OUT:-out/demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin}
OUT=${OUT:-out/demo}
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/s2s-build" samples -o "$OUT/samples" -j 2
# Models: a character 5-gram for the text of every language (en and zh), a 4-gram over units.
# Trained on part 0/2 of the items, scored on part 1/2: no item is scored by a model that saw it.
"$BIN/s2s-lm" text --shard 0/2 "$OUT"/samples/*.tar | "$BIN/s2s-lm" train --order 5 --tok chars -o "$OUT/text.arpa"
"$BIN/s2s-lm" text --units --shard 0/2 "$OUT"/samples/*.tar | "$BIN/s2s-lm" train --order 4 --tok units -o "$OUT/units.arpa"
"$BIN/s2s-score" --mode t2t,s2s --lm "ngram:$OUT/text.arpa,$OUT/units.arpa" --shard 1/2 \
    -o "$OUT/score" "$OUT"/samples/*.tar
if [ -n "${WORKER:-}" ]; then
    echo
    "$BIN/s2s-score" --mode t2t,s2t,s2s --lm "worker:$WORKER" --shard 1/2 \
        -o "$OUT/score-worker" "$OUT"/samples/*.tar
fi
echo
echo "report: $OUT/score/report.json   pairs: $OUT/score/pairs.jsonl   shards: $OUT/samples/"
echo "chart:  $OUT/score/report.svg (open it in a browser)"
if [ -n "${WORKER:-}" ]; then
    echo "worker: $OUT/score-worker/report.json   chart: $OUT/score-worker/report.svg"
fi
