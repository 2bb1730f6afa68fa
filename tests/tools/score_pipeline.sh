#!/usr/bin/env bash
# The whole offline pipeline ends in a report: data/samples-en.csv imported, synthesized,
# resampled, tokenized, packed; a word model and a unit model trained by s2s-lm on half of the
# stories; the other half scored by s2s-score in t2t and s2s at once. Checks report.json against
# pairs.jsonl and dataset.json with independent Python readers.
set -euo pipefail
BIN=${S2S_BIN:?}
SRC=${S2S_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"

"$BIN/s2s-import" storycloze "$SRC/data/samples-en.csv" 2>/dev/null \
    | "$BIN/s2s-synth" --voice en-us 2>/dev/null \
    | "$BIN/s2s-resample" --rate 16000 2>/dev/null > speech.tar || fail "import | synth | resample"
"$BIN/s2s-tokenize" train -k 32 --iters 20 -o units.cb speech.tar 2>/dev/null || fail "codebook"
"$BIN/s2s-tokenize" --codebook units.cb -q speech.tar > units.tar || fail "tokenize"
mkdir shards
"$BIN/s2s-pack" -q -o 'shards/en-%06d.tar' -n 8 units.tar || fail "pack"

# models from part 0 of 2, scores on part 1 of 2 (held out)
"$BIN/s2s-lm" text --shard 0/2 shards/*.tar 2>/dev/null \
    | "$BIN/s2s-lm" train --order 3 -o words.arpa 2>/dev/null || fail "word model"
"$BIN/s2s-lm" text --units --shard 0/2 shards/*.tar 2>/dev/null \
    | "$BIN/s2s-lm" train --order 4 --tok units -o units.arpa 2>/dev/null || fail "unit model"
"$BIN/s2s-score" --mode t2t,s2s --lm ngram:words.arpa,units.arpa --dedup --shard 1/2 -o out \
    shards/*.tar > table.txt || fail "s2s-score"
grep -q '^degradation t2t-s2s' table.txt || fail "table has no degradation line"

python3 - "$(sha256sum shards/dataset.json | cut -d' ' -f1)" <<'PY' || fail "report check"
import json, sys, math
r = json.load(open("out/report.json"))
p = [json.loads(l) for l in open("out/pairs.jsonl")]
ds = json.load(open("shards/dataset.json"))
assert ds["samples"] == 30
assert r["run"]["dataset_json_sha256"] == [sys.argv[1]]
assert r["run"]["shard"] == "1/2" and r["run"]["dedup"] is True
assert [t.split()[0] for t in r["run"]["item_tools"]] == ["s2s-import", "s2s-resample", "s2s-synth", "s2s-tokenize"], r["run"]["item_tools"]
n = r["items"]
assert 5 < n < 25, n  # about half of the 30 stories
for mode in ("t2t", "s2s"):
    m = r["modes"][mode]
    q = [x for x in p if x["mode"] == mode]
    assert m["expected"] == n and m["failed"] == 0 and len(q) == n
    assert m["accuracy"] == sum(x["outcome"] for x in q) / n
    lo, hi = m["ci95"]; assert lo <= m["accuracy"] <= hi
    assert all(x["plausible"]["ntok"] > 0 and x["implausible"]["ntok"] > 0 for x in q)
d = r["degradation"]["t2t-s2s"]
assert d["pairs"] == n
assert abs(d["difference"] - (r["modes"]["t2t"]["accuracy"] - r["modes"]["s2s"]["accuracy"])) < 1e-12
assert 0 <= d["mcnemar"]["p"] <= 1
# the unit model is asked about units: token counts are (deduplicated) unit counts, far more
# than the words of the candidate text
s = [x for x in p if x["mode"] == "s2s"]; t = [x for x in p if x["mode"] == "t2t"]
assert sum(x["plausible"]["ntok"] for x in s) > 3 * sum(x["plausible"]["ntok"] for x in t)
PY

# speech context with an n-gram model is refused with a pointer to worker models
set +e
"$BIN/s2s-score" --mode s2t --lm ngram:words.arpa,units.arpa -o bad shards/*.tar 2>err.txt; rc=$?
set -e
[ "$rc" = 1 ] && grep -q "worker" err.txt || fail "s2t with n-gram models: $(cat err.txt)"
echo "score_pipeline.sh: ok"
