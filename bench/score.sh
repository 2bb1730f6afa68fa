#!/usr/bin/env bash
# bench/score.sh — end-to-end n-gram scoring throughput of s2s-score (t2t, word 3-gram) against the
# raw n-gram scoring rate of the same model on the same text (s2s-lm ppl), same run.
#
# Data: the StoryCloze Spring 2016 val+test stories imported with s2s-import, repeated COPIES
# times (default 10) under new ids; model: 3-gram trained by s2s-lm on context + right ending.
# Anchor: `s2s-lm ppl` over the same (context + candidate) lines that s2s-score asks about
# (`s2s-lm text --what all`): the raw model reading and scoring every token of them.
# Ours: s2s-score reading the items, tokenizing, scoring every candidate given its context, the
# protocol, and writing pairs.jsonl and report.json (--bootstrap 0, then the default 1000).
# Rates are tokens per second on one core (both are single-threaded); "tokens" are the same
# context + candidate tokens for both, so the ratio is the scorer's overhead. Median of REPS (3).
# Second table: the same for s2s with a unit 4-gram, on data/samples-en.csv synthesized,
# resampled and tokenized (k = 50), repeated UCOPIES times (default 40).
# Usage: bench/score.sh [BUILD_DIR]   (env: COPIES, UCOPIES, REPS)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
BIN=$BUILD/bin
COPIES=${COPIES:-10}
UCOPIES=${UCOPIES:-40}
REPS=${REPS:-3}
CORP=${S2S_SHARED:-$SRC/../shared}/corpora/storycloze_spring2016
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for t in s2s-import s2s-lm s2s-score; do
  [ -x "$BIN/$t" ] || { echo "bench/score.sh: build first ($BIN/$t)" >&2; exit 3; }
done
cd "$TMP"
"$BIN/s2s-import" storycloze "$CORP"/*.csv > one.jsonl 2>/dev/null
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
"$BIN/s2s-lm" text --what all items.jsonl > all.txt 2>/dev/null
nitems=$(wc -l < items.jsonl)

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # prints the median wall time of REPS runs of "$@"
  for _ in $(seq "$REPS"); do
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median
}
t_ppl=$(timeit "$BIN/s2s-lm" ppl words.arpa all.txt)
ppl_out=$("$BIN/s2s-lm" ppl words.arpa all.txt 2>&1)
# tokens of the context + candidate lines: words + </s> per sentence, as ppl scored them
tokens=$(echo "$ppl_out" | sed -n 's/.*scored=\([0-9]*\).*/\1/p')
sentences=$(echo "$ppl_out" | sed -n 's/.* \([0-9]*\) sentences.*/\1/p')
ctxcand=$((tokens - sentences)) # s2s-score scores no </s> by default
t_score=$(timeit "$BIN/s2s-score" --lm ngram:words.arpa --bootstrap 0 --no-cache -o out items.jsonl)
t_full=$(timeit "$BIN/s2s-score" --lm ngram:words.arpa --no-cache -o out2 items.jsonl)
t_cache=$(timeit "$BIN/s2s-score" --lm 'ngram:words.arpa?cache=0.1' --bootstrap 0 --no-cache -o out3 items.jsonl)
# the score cache (resume): a first run that writes DIR/scores.cache.jsonl, then reruns from it
fresh() { rm -rf "$1"; shift; "$@"; }
t_cold=$(timeit fresh outc "$BIN/s2s-score" --lm ngram:words.arpa --bootstrap 0 -o outc items.jsonl)
t_warm=$(timeit "$BIN/s2s-score" --lm ngram:words.arpa --bootstrap 0 -o outc items.jsonl)
cand=$(python3 -c '
import json
print(sum(json.loads(l)["plausible"]["ntok"] + json.loads(l)["implausible"]["ntok"] for l in open("out/pairs.jsonl")))')
rate() { echo "$1 / $2" | bc -l | xargs printf '%.0f'; }
echo "items: $nitems, candidate requests: $((nitems * 2)), context+candidate tokens: $ctxcand, candidate tokens: $cand"
echo
echo "| what | wall s (median of $REPS) | tokens/s (ctx+cand) | candidate tokens/s |"
echo "| --- | --- | --- | --- |"
printf '| anchor: s2s-lm ppl, same lines (raw n-gram) | %.3f | %s | - |\n' "$t_ppl" "$(rate "$tokens" "$t_ppl")"
printf '| s2s-score t2t, --bootstrap 0 | %.3f | %s | %s |\n' "$t_score" "$(rate "$ctxcand" "$t_score")" "$(rate "$cand" "$t_score")"
printf '| s2s-score t2t, bootstrap 1000 (default) | %.3f | %s | %s |\n' "$t_full" "$(rate "$ctxcand" "$t_full")" "$(rate "$cand" "$t_full")"
printf '| s2s-score t2t, cache=0.1 | %.3f | %s | %s |\n' "$t_cache" "$(rate "$ctxcand" "$t_cache")" "$(rate "$cand" "$t_cache")"
printf '| s2s-score t2t, --bootstrap 0, score cache written (first run) | %.3f | %s | %s |\n' "$t_cold" "$(rate "$ctxcand" "$t_cold")" "$(rate "$cand" "$t_cold")"
printf '| s2s-score t2t, --bootstrap 0, every score from the cache (rerun) | %.3f | %s | %s |\n' "$t_warm" "$(rate "$ctxcand" "$t_warm")" "$(rate "$cand" "$t_warm")"

# ---- s2s: unit model over unit sequences ------------------------------------------------------
"$BIN/s2s-import" storycloze "$SRC/data/samples-en.csv" 2>/dev/null | "$BIN/s2s-synth" --voice en-us 2>/dev/null \
  | "$BIN/s2s-resample" --rate 16000 2>/dev/null > speech.tar
"$BIN/s2s-tokenize" train -k 50 -o units.cb speech.tar 2>/dev/null
"$BIN/s2s-tokenize" --codebook units.cb -q speech.tar > units1.tar
python3 - "$UCOPIES" <<'PY'
import io, sys, tarfile
src = list(tarfile.open("units1.tar"))
data = {m.name: tarfile.open("units1.tar").extractfile(m).read() for m in src}
with tarfile.open("units.tar", "w", format=tarfile.USTAR_FORMAT) as out:
    for c in range(int(sys.argv[1])):
        for m in src:
            key, rest = m.name.split(".", 1)
            body = data[m.name]
            if rest == "json":
                body = body.replace(f'"id":"{key}"'.encode(), f'"id":"{key}-{c}"'.encode())
            ti = tarfile.TarInfo(f"{key}-{c}.{rest}"); ti.size = len(body); ti.mtime = 0
            out.addfile(ti, io.BytesIO(body))
PY
"$BIN/s2s-lm" text --units units1.tar 2>/dev/null | "$BIN/s2s-lm" train --order 4 --tok units -o units.arpa 2>/dev/null
"$BIN/s2s-lm" text --units --what all units.tar > uall.txt 2>/dev/null
nu=$(python3 -c 'import tarfile; print(sum(1 for m in tarfile.open("units.tar") if m.name.endswith(".json")))')
t_uppl=$(timeit "$BIN/s2s-lm" ppl units.arpa uall.txt)
uppl_out=$("$BIN/s2s-lm" ppl units.arpa uall.txt 2>&1)
utokens=$(echo "$uppl_out" | sed -n 's/.*scored=\([0-9]*\).*/\1/p')
usent=$(echo "$uppl_out" | sed -n 's/.* \([0-9]*\) sentences.*/\1/p')
uctx=$((utokens - usent))
t_us=$(timeit "$BIN/s2s-score" --mode s2s --lm ngram:units.arpa --bootstrap 0 --no-cache -o uout units.tar)
ucand=$(python3 -c '
import json
print(sum(json.loads(l)["plausible"]["ntok"] + json.loads(l)["implausible"]["ntok"] for l in open("uout/pairs.jsonl")))')
echo
echo "s2s: items: $nu, context+candidate units: $uctx, candidate units: $ucand"
echo
echo "| what | wall s (median of $REPS) | units/s (ctx+cand) | candidate units/s |"
echo "| --- | --- | --- | --- |"
printf '| anchor: s2s-lm ppl, same unit lines (raw n-gram) | %.3f | %s | - |\n' "$t_uppl" "$(rate "$utokens" "$t_uppl")"
printf '| s2s-score s2s, --bootstrap 0 | %.3f | %s | %s |\n' "$t_us" "$(rate "$uctx" "$t_us")" "$(rate "$ucand" "$t_us")"
