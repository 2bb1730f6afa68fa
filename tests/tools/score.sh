#!/usr/bin/env bash
# s2s-score end to end: t2t with a word model trained by s2s-lm, s2s with a unit model over a
# tar stream with .units members, upstream losses in --compat s2sbench mode, missing inputs.
# Every number in report.json is recomputed here from pairs.jsonl (or from the raw losses) by an
# independent Python reader.
set -euo pipefail
BIN=${S2S_BIN:?}
SRC=${S2S_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"

# ---- items and a word model ------------------------------------------------------------------
python3 - <<'PY'
import json, random
random.seed(5)
subj = ["the cat", "a dog", "my friend", "the teacher", "her brother", "the old man"]
verb = ["went to", "walked to", "drove to", "ran to"]
place = ["the store", "the park", "the school", "the beach"]
good = ["bought some milk .", "played with the ball .", "read a book .", "swam in the sea ."]
bad = ["ate the moon .", "sang to a rock purple .", "flew under the sea tables .", "is a spoon green ."]
train = open("train.txt", "w")
items = open("items.jsonl", "w")
for i in range(60):
    s, v, p = random.choice(subj), random.choice(verb), random.choice(place)
    g = random.choice(good)
    ctx = f"{s} {v} {p} . then {s}"
    # some stories are told with the odd ending, so the model is not always right
    train.write(f"{ctx} {g if random.random() < 0.6 else random.choice(bad)}\n")
    if i < 40:
        cands = [{"text": g, "label": 1}, {"text": bad[i % 4], "label": 0}]
        if i % 2: cands.reverse()
        it = {"id": f"story_{i:03d}", "task": "cloze", "lang": "en", "category": "story",
              "context": {"text": ctx}, "candidates": cands}
    else:
        cands = [{"text": bad[(i + k) % 4], "label": 0} for k in range(3)]
        cands.insert(i % 4, {"text": g, "label": 1})
        it = {"id": f"quiz_{i:03d}", "task": "choice", "lang": "en", "category": f"cat{i % 3}",
              "context": {"text": ctx}, "candidates": cands}
    items.write(json.dumps(it) + "\n")
PY
"$BIN/s2s-lm" train --order 3 -o words.arpa train.txt 2>/dev/null || fail "s2s-lm train"

# ---- t2t ---------------------------------------------------------------------------------------
"$BIN/s2s-score" --mode t2t --lm ngram:words.arpa --seed 7 --bootstrap 500 -o out items.jsonl \
    > table.txt || fail "s2s-score t2t"
[ -s out/report.json ] && [ -s out/pairs.jsonl ] || fail "outputs missing"
grep -q '^t2t ' table.txt || fail "no t2t row in the table"
ls out | grep -q tmp && fail "temporary file left in out/"

python3 - "$(sha256sum words.arpa | cut -d' ' -f1)" <<'PY' || fail "t2t report check"
import json, sys, math
rep = json.load(open("out/report.json"))
pairs = [json.loads(l) for l in open("out/pairs.jsonl")]
m = rep["modes"]["t2t"]
# independent recomputation: outcome from the per-token means, lower wins, tie 0.5
def outcome(p):
    a, b = p["plausible"], p["implausible"]
    ma, mb = a["nll"] / a["ntok"], b["nll"] / b["ntok"]
    assert abs(ma - a["mean"]) < 1e-12 and abs(a["sum"] - a["nll"]) < 1e-12
    assert abs(a["byte"] - a["nll"] / a["bytes"]) < 1e-12
    return 1.0 if ma < mb else 0.0 if ma > mb else 0.5
outs = [outcome(p) for p in pairs]
assert all(o == p["outcome"] for o, p in zip(outs, pairs)), "outcome differs"
assert len(pairs) == 40 + 20 * 3, len(pairs)
acc = sum(outs) / len(outs)
assert m["accuracy"] == acc, (m["accuracy"], acc)
assert m["pairs"] == len(pairs) and m["expected"] == 100 and m["failed"] == 0
assert m["ties"] == sum(1 for p in pairs if p["tie"])
lo, hi = m["ci95"]
assert lo <= acc <= hi and hi - lo < 0.5, m["ci95"]
assert 0.6 < acc < 1, f"the word model should mostly prefer the plausible endings, got {acc}"
mp = sum(p["plausible"]["mean"] for p in pairs) / len(pairs)
assert abs(m["mean_score_plausible"] - mp) < 1e-9
assert m["mean_score_plausible"] < m["mean_score_implausible"]
cats = m["by_category"]
assert set(cats) == {"story", "cat0", "cat1", "cat2"}, cats
assert cats["story"]["pairs"] == 40 and sum(c["pairs"] for c in cats.values()) == 100
assert m["by_lang"]["en"]["accuracy"] == acc
run = rep["run"]
assert run["backend"] == "ngram:words.arpa" and run["model_sha256"] == sys.argv[1]
assert run["seed"] == 7 and rep["decision_score"] == "mean" and rep["items"] == 60
assert rep["degradation"] == {}
PY

# determinism: same input, byte-identical outputs; item order does not matter either
"$BIN/s2s-score" --mode t2t --lm ngram:words.arpa --seed 7 --bootstrap 500 -o out2 items.jsonl >/dev/null
cmp out/report.json out2/report.json || fail "report not deterministic"
cmp out/pairs.jsonl out2/pairs.jsonl || fail "pairs not deterministic"
tac items.jsonl | "$BIN/s2s-score" --mode t2t --lm ngram:words.arpa --seed 7 --bootstrap 500 \
    -o out3 >/dev/null || fail "stdin"
python3 - <<'PY' || fail "stdin/reversed run differs"
import json
a, b = json.load(open("out/report.json")), json.load(open("out3/report.json"))
a["run"]["inputs"] = b["run"]["inputs"] = None
assert a == b
PY
# another seed moves the CI only
"$BIN/s2s-score" --lm ngram:words.arpa --seed 8 --bootstrap 500 -o out4 items.jsonl >/dev/null
python3 -c '
import json
a, b = json.load(open("out/report.json")), json.load(open("out4/report.json"))
assert a["modes"]["t2t"]["accuracy"] == b["modes"]["t2t"]["accuracy"]
assert a["modes"]["t2t"]["ci95"] != b["modes"]["t2t"]["ci95"]' || fail "seed"

# other decision scores and the cache option
"$BIN/s2s-score" --lm 'ngram:words.arpa?cache=0.2' --score byte -o outb items.jsonl >/dev/null \
    || fail "byte score"
python3 -c '
import json
r = json.load(open("outb/report.json")); assert r["decision_score"] == "byte"
p = [json.loads(l) for l in open("outb/pairs.jsonl")]
o = [1.0 if x["plausible"]["byte"] < x["implausible"]["byte"] else 0.0 if x["plausible"]["byte"] > x["implausible"]["byte"] else 0.5 for x in p]
assert r["modes"]["t2t"]["accuracy"] == sum(o) / len(o)
q = [json.loads(l) for l in open("out/pairs.jsonl")]
assert p[0]["plausible"]["nll"] != q[0]["plausible"]["nll"], "cache changed nothing"' \
    || fail "byte score check"

# ---- Chinese: a character model (data/samples-zh.csv); a word model is refused for zh ---------
"$BIN/s2s-import" storycloze --lang zh "$SRC/data/samples-zh.csv" > zh.jsonl 2>/dev/null \
    || fail "import zh"
head -n 20 zh.jsonl | "$BIN/s2s-lm" text 2>/dev/null \
    | "$BIN/s2s-lm" train --order 3 --tok chars -o zh.arpa 2>/dev/null || fail "zh model"
"$BIN/s2s-score" --lm ngram:zh.arpa -o outz zh.jsonl >/dev/null || fail "zh t2t"
python3 - <<'PY' || fail "zh report"
import json
m = json.load(open("outz/report.json"))["modes"]["t2t"]
p = [json.loads(l) for l in open("outz/pairs.jsonl")]
assert m["pairs"] == 30 and list(m["by_lang"]) == ["zh"]
assert m["accuracy"] == sum(x["outcome"] for x in p) / 30
# one token per character: the candidate's token count is its character count (no spaces)
assert all(x["plausible"]["ntok"] == x["plausible"]["chars"] for x in p), p[0]
PY
set +e
"$BIN/s2s-score" --lm ngram:words.arpa -o badz zh.jsonl 2>errz.txt; rcz=$?
set -e
[ "$rcz" = 1 ] && grep -q "tok chars" errz.txt || fail "words model on zh: $(cat errz.txt)"

# ---- missing inputs and unsupported modes: errors that name what is missing, no report -------
set +e
"$BIN/s2s-score" --mode s2t --lm ngram:words.arpa -o bad1 items.jsonl 2>err1.txt; rc1=$?
"$BIN/s2s-score" --mode t2t,s2t --lm ngram:words.arpa -o bad1 items.jsonl 2>>err1.txt; rc1b=$?
set -e
[ "$rc1" = 1 ] && [ "$rc1b" = 1 ] || fail "s2t with an n-gram model: exit $rc1/$rc1b, want 1"
grep -q "worker" err1.txt || fail "s2t error does not name the worker model: $(cat err1.txt)"
[ ! -e bad1/report.json ] || fail "report written despite the error"

# ---- s2s over a tar stream with .units members, unit model from s2s-lm -------------------------
python3 - <<'PY'
import io, json, random, tarfile
random.seed(11)
def units(n, base):  # plausible continuations repeat the context's pattern
    return [base[i % len(base)] for i in range(n)]
tr = open("units.txt", "w")
with tarfile.open("units.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        tf.addfile(ti, io.BytesIO(data))
    for i in range(30):
        base = [random.randrange(50) for _ in range(4)]
        ctx = units(24, base)
        good = [base[(24 + k) % 4] for k in range(8)]
        good = [u for u in good for _ in (0, 1)]  # raw units repeat (frames)
        bad = [random.randrange(50, 100) for _ in range(16)]
        for _ in range(3):
            tr.write(" ".join(map(str, ctx + good)) + "\n")
        right = i % 2
        subj = ["the cat", "a dog", "my friend", "the teacher", "her brother", "the old man"][i % 6]
        cands = [{"text": ["bought some milk .", "played with the ball .", "read a book .",
                           "swam in the sea ."][i % 4], "label": 1},
                 {"text": ["ate the moon .", "sang to a rock purple .", "flew under the sea tables .",
                           "is a spoon green ."][(i // 4) % 4], "label": 0}]
        cu = [good, bad]
        if right:
            cands.reverse(); cu.reverse()
        key = f"u{i:03d}"
        item = {"id": key, "task": "cloze", "lang": "en",
                "context": {"text": f"{subj} went to the park . then {subj}"},
                "candidates": cands}
        add(key + ".json", json.dumps(item).encode())
        add(key + ".ctx.units", " ".join(map(str, ctx)).encode())
        for k in range(2):
            add(f"{key}.c{k}.units", " ".join(map(str, cu[k])).encode())
PY
"$BIN/s2s-lm" train --order 3 --tok units -o units.arpa units.txt 2>/dev/null || fail "unit model"
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa -o outs < units.tar >/dev/null || fail "s2s"
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa --dedup -o outd units.tar >/dev/null \
    || fail "s2s --dedup"
python3 - <<'PY' || fail "s2s report check"
import json
r = json.load(open("outs/report.json")); m = r["modes"]["s2s"]
p = [json.loads(l) for l in open("outs/pairs.jsonl")]
assert m["pairs"] == 30 and m["failed"] == 0 and len(p) == 30
assert m["accuracy"] == sum(x["outcome"] for x in p) / 30 and m["accuracy"] > 0.9, m["accuracy"]
# 16 raw units per candidate; --dedup collapses the doubled frames of the good ones to 8
assert all(x["plausible"]["ntok"] == 16 for x in p)
d = [json.loads(l) for l in open("outd/pairs.jsonl")]
assert all(x["plausible"]["ntok"] <= 8 for x in d), [x["plausible"]["ntok"] for x in d]
assert json.load(open("outd/report.json"))["run"]["dedup"] is True
PY
# the same samples packed into shards: same scores, dataset.json hash recorded; parts add up
mkdir shards
"$BIN/s2s-pack" -q -o 'shards/u-%06d.tar' -n 10 units.tar || fail "s2s-pack"
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa -o outp shards/u-*.tar >/dev/null || fail "shards"
for i in 0 1 2; do
    "$BIN/s2s-score" --mode s2s --lm ngram:units.arpa --shard $i/3 -o outp$i shards/u-*.tar \
        >/dev/null || fail "--shard $i/3"
done
python3 - "$(sha256sum shards/dataset.json | cut -d' ' -f1)" <<'PY' || fail "shard run check"
import json, sys
a, b = json.load(open("outs/report.json")), json.load(open("outp/report.json"))
assert b["run"]["dataset_json_sha256"] == [sys.argv[1]], b["run"]["dataset_json_sha256"]
assert a["modes"] == b["modes"]
assert open("outs/pairs.jsonl").read() == open("outp/pairs.jsonl").read()
parts = [json.load(open(f"outp{i}/report.json"))["modes"]["s2s"] for i in range(3)]
assert sum(p["pairs"] for p in parts) == 30 and all(p["pairs"] < 30 for p in parts)
assert sum(p["correct"] for p in parts) == a["modes"]["s2s"]["correct"]
PY
# --skip-bad: a sample without c1.units is skipped, counted and reported; without it, exit 1
python3 - <<'PY'
import io, tarfile
src = tarfile.open("units.tar")
with tarfile.open("holes.tar", "w", format=tarfile.USTAR_FORMAT) as out:
    for m in src:
        if m.name == "u003.c1.units":
            continue
        out.addfile(m, src.extractfile(m))
PY
set +e
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa -o bad6 holes.tar 2>err6.txt; rc6=$?
set -e
[ "$rc6" = 1 ] && grep -q "u003.*c1.units" err6.txt || fail "missing c1.units: $(cat err6.txt)"
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa --skip-bad -o outk holes.tar >/dev/null 2>err7.txt \
    || fail "--skip-bad"
grep -q "1 item(s) skipped" err7.txt || fail "--skip-bad not reported: $(cat err7.txt)"
python3 -c '
import json
r = json.load(open("outk/report.json"))
assert r["items"] == 29 and r["run"]["skipped_items"] == 1 and r["modes"]["s2s"]["pairs"] == 29' \
    || fail "--skip-bad report"

# one text and one unit model: t2t and s2s in one run, with their degradation
"$BIN/s2s-score" --mode t2t,s2s --lm ngram:words.arpa,units.arpa -o outts units.tar >/dev/null \
    || fail "t2t,s2s with two models"
python3 - <<'PY' || fail "t2t-s2s degradation check"
import json, math
r = json.load(open("outts/report.json"))
p = [json.loads(l) for l in open("outts/pairs.jsonl")]
o = {(x["item"], x["mode"]): x["outcome"] for x in p}
items = sorted({x["item"] for x in p})
a = [o[(i, "t2t")] for i in items]; b = [o[(i, "s2s")] for i in items]
d = r["degradation"]["t2t-s2s"]
assert d["pairs"] == len(items) and d["from"] == "t2t" and d["to"] == "s2s"
assert abs(d["difference"] - (sum(a) - sum(b)) / len(items)) < 1e-12
dec = [(x, y) for x, y in zip(a, b) if x != 0.5 and y != 0.5]
bb = sum(1 for x, y in dec if x > y); cc = sum(1 for x, y in dec if x < y)
assert d["mcnemar"]["b"] == bb and d["mcnemar"]["c"] == cc, (d["mcnemar"], bb, cc)
n, k = bb + cc, min(bb, cc)
pv = 1.0 if bb == cc else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
assert abs(d["mcnemar"]["p"] - pv) < 1e-12, (d["mcnemar"]["p"], pv)
lo, hi = d["ci95"]; assert lo <= d["difference"] <= hi
assert r["modes"]["s2s"]["accuracy"] > 0.9
assert len(r["run"]["model_sha256"]) == 64
assert 0 < r["modes"]["t2t"]["accuracy"] < 1 and r["warnings"] == [], r["warnings"]
PY
# the text model cannot score s2s, and items without units cannot be scored in s2s
set +e
"$BIN/s2s-score" --mode s2s --lm ngram:words.arpa -o bad2 units.tar 2>err2.txt; rc2=$?
"$BIN/s2s-score" --mode s2s --lm ngram:units.arpa -o bad3 items.jsonl 2>err3.txt; rc3=$?
set -e
[ "$rc2" = 1 ] && grep -q "unit model" err2.txt || fail "s2s with a text model: $(cat err2.txt)"
[ "$rc3" = 1 ] && grep -q "ctx.units" err3.txt || fail "s2s without units: $(cat err3.txt)"
[ ! -e bad3/report.json ] || fail "report written despite missing units"

# ---- upstream losses (result.jsonl) joined to items from s2s-import s2sbench, compat mode ------
python3 - <<'PY'
import json, random
random.seed(3)
with open("story.jsonl", "w") as f, open("result_story.jsonl", "w") as r:
    for k in range(0, 40, 2):
        first = f"story number {k}"
        f.write(json.dumps({"uttid": k, "first": first, "last": f"good {k}"}) + "\n")
        f.write(json.dumps({"uttid": k + 1, "first": first, "last": f"bad {k}"}) + "\n")
        a = round(random.uniform(1, 3), 1); b = a if k % 10 == 0 else round(random.uniform(1, 3), 1)
        r.write(json.dumps({"uttid": k, "key": None, "loss": [a], "ppl": [0]}) + "\n")
        r.write(json.dumps({"uttid": k + 1, "key": None, "loss": [b], "ppl": [0]}) + "\n")
with open("cmmlu.jsonl", "w") as f, open("result_cmmlu.jsonl", "w") as r:
    for u in range(100, 130):
        q = {"uttid": u, "first": f"question {u}", "answer": "ABCD"[u % 4]}
        for c in "ABCD":
            q[c] = f"option {c} {u}"
        f.write(json.dumps(q) + "\n")
    for c in "ABCD":  # upstream writes one pass per key
        for u in range(100, 130):
            r.write(json.dumps({"uttid": u, "key": c, "loss": [round(random.uniform(1, 2), 1)], "ppl": [0]}) + "\n")
PY
"$BIN/s2s-import" s2sbench story.jsonl > story_items.jsonl 2>/dev/null || fail "import story"
"$BIN/s2s-import" s2sbench cmmlu.jsonl > cmmlu_items.jsonl 2>/dev/null || fail "import cmmlu"
"$BIN/s2s-score" --mode s2t --lm losses:result_story.jsonl --compat s2sbench -o ls \
    story_items.jsonl >/dev/null 2>&1 || fail "losses story"
"$BIN/s2s-score" --mode s2t --lm losses:result_cmmlu.jsonl --compat s2sbench -o lc \
    cmmlu_items.jsonl >/dev/null 2>&1 || fail "losses cmmlu"
"$BIN/s2s-score" --mode s2t --lm losses:result_story.jsonl -o ld story_items.jsonl \
    >/dev/null 2>&1 || fail "losses story default"
python3 - <<'PY' || fail "compat mode differs from upstream's rules"
import json
from collections import defaultdict
# upstream's story rule: sort by uttid, consecutive pairs, even (right) < odd (wrong), strict
rows = sorted((json.loads(l) for l in open("result_story.jsonl")), key=lambda d: int(d["uttid"]))
good = sum(1 for i in range(0, len(rows) - 1, 2) if rows[i]["loss"][0] < rows[i + 1]["loss"][0])
n = len(rows) // 2
ev = sum(rows[i]["loss"][0] for i in range(0, len(rows) - 1, 2)) / n
od = sum(rows[i + 1]["loss"][0] for i in range(0, len(rows) - 1, 2)) / n
m = json.load(open("ls/report.json"))["modes"]["s2t"]
assert m["accuracy"] == good / n and m["pairs"] == n, (m["accuracy"], good / n)
assert abs(m["mean_score_plausible"] - ev) < 1e-12 and abs(m["mean_score_implausible"] - od) < 1e-12
ties = sum(1 for i in range(0, len(rows) - 1, 2) if rows[i]["loss"][0] == rows[i + 1]["loss"][0])
assert ties >= 4 and m["ties"] == ties
# default mode counts those ties 0.5 instead
d = json.load(open("ld/report.json"))["modes"]["s2t"]
assert d["correct"] == good + 0.5 * ties
# upstream's CMMLU rule: answer loss <= every other key's loss
ans = {json.loads(l)["uttid"]: json.loads(l)["answer"] for l in open("cmmlu.jsonl")}
loss = defaultdict(dict)
for l in open("result_cmmlu.jsonl"):
    d = json.loads(l); loss[d["uttid"]][d["key"]] = d["loss"][0]
c = t = 0
for u, a in ans.items():
    for k in loss[u]:
        if k != a:
            c += loss[u][a] <= loss[u][k]; t += 1
m = json.load(open("lc/report.json"))["modes"]["s2t"]
assert m["accuracy"] == c / t and m["pairs"] == t, (m["accuracy"], c / t)
PY
# upstream writes one result.jsonl per mode: t2t and s2t files in one run give the degradation
python3 - <<'PY'
import json
with open("result_story_t2t.jsonl", "w") as w:
    for l in open("result_story.jsonl"):
        d = json.loads(l)
        d["loss"] = [d["loss"][0] - (0.7 if d["uttid"] % 2 == 0 else 0)]  # text context helps
        w.write(json.dumps(d) + "\n")
PY
"$BIN/s2s-score" --mode t2t,s2t --lm losses:t2t=result_story_t2t.jsonl,s2t=result_story.jsonl \
    --compat s2sbench -o lts story_items.jsonl >/dev/null 2>&1 || fail "per-mode losses"
python3 - <<'PY' || fail "per-mode losses degradation"
import json
r = json.load(open("lts/report.json"))
t, s = r["modes"]["t2t"], r["modes"]["s2t"]
assert s == json.load(open("ls/report.json"))["modes"]["s2t"]
assert t["accuracy"] > s["accuracy"]
d = r["degradation"]["t2t-s2t"]
assert abs(d["difference"] - (t["accuracy"] - s["accuracy"])) < 1e-12
assert d["mcnemar"]["b"] > 0 and d["mcnemar"]["c"] == 0 and d["mcnemar"]["p"] < 0.05, d
PY
set +e
"$BIN/s2s-score" --mode t2t --lm losses:s2t=result_story.jsonl -o bad5 story_items.jsonl \
    2>err5.txt; rc5=$?
set -e
[ "$rc5" = 1 ] && grep -q "no losses file for mode t2t" err5.txt || fail "missing mode file: $(cat err5.txt)"
# items that do not carry upstream uttids cannot be joined to losses
set +e
"$BIN/s2s-score" --mode s2t --lm losses:result_story.jsonl -o bad4 items.jsonl 2>err4.txt; rc4=$?
set -e
[ "$rc4" = 1 ] && grep -q "uttid" err4.txt || fail "losses without uttid: $(cat err4.txt)"
# Ctrl-C while reading a stream that has not ended: exit 130, nothing written
mkfifo fifo
exec 3<>fifo # read-write: opening does not block, and the stream stays open
head -n 5 items.jsonl >&3
"$BIN/s2s-score" --lm ngram:words.arpa -o outi fifo 2>erri.txt &
scorer=$!
sleep 0.5
kill -INT $scorer
set +e; wait $scorer; rci=$?; set -e
exec 3>&-
[ "$rci" = 130 ] || fail "SIGINT: exit $rci, want 130 ($(cat erri.txt))"
[ ! -e outi/report.json ] || fail "SIGINT: report written"
# usage errors exit 2
for args in "-o u1 items.jsonl" "--lm ngram:words.arpa items.jsonl" \
    "--lm ngram:words.arpa --mode t2x -o u1 items.jsonl" "--lm ngram:words.arpa --seed -1 -o u1" \
    "--lm ngram:words.arpa --score median -o u1" "--lm ngram:words.arpa --compat lm-eval -o u1"; do
    set +e; "$BIN/s2s-score" $args >/dev/null 2>&1 </dev/null; rcu=$?; set -e
    [ "$rcu" = 2 ] || fail "s2s-score $args: exit $rcu, want 2"
done
echo "score.sh: ok"
