#!/usr/bin/env bash
# s2s-score checkpoint sweeps: --lm LABEL=SPEC repeated. Three s2s-lm models (a text and a unit
# n-gram each) trained on growing amounts of text score the same items in t2t and s2s:
#  - DIR/report.json = {tool, version, sweep: [{label, report}]} in the given order, each report
#    the same bytes as DIR/LABEL/report.json and as a single-model run of that spec;
#  - DIR/sweep.svg is well-formed XML (xmllint, python3 xml.etree) with one accuracy curve per
#    mode, three points each, and the plausible/implausible mean-score curves;
#  - a sweep from stdin equals one from the file; a rerun is answered from the cache with the
#    same bytes; a sweep that failed on its third model resumes with the first two cached;
#  - label errors are usage errors (exit 2).
set -euo pipefail
BIN=${S2S_BIN:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$T"
command -v xmllint > /dev/null || { echo "score_sweep.sh: xmllint missing (apt-get install libxml2-utils)" >&2; exit 1; }

# 40 items with text and units; training text and units from the same generator, 2000 lines
python3 - <<'PY'
import io, json, random, tarfile
random.seed(21)
subj = ["the cat", "a dog", "my friend", "the teacher", "her brother", "the old man"]
verb = ["went to", "walked to", "drove to", "ran to"]
place = ["the store", "the park", "the school", "the beach"]
good = ["bought some milk .", "played with the ball .", "read a book .", "swam in the sea ."]
bad = ["ate the moon .", "sang to a rock purple .", "flew under the sea tables .", "is a spoon green ."]
def story():
    s = random.choice(subj)
    return f"{s} {random.choice(verb)} {random.choice(place)} . then {s}"
bases = [[random.randrange(40) for _ in range(4)] for _ in range(30)]  # the "language" of units
def units(base, n, start=0):
    return [base[(start + i) % len(base)] for i in range(n)]
with open("text.txt", "w") as t, open("units.txt", "w") as u:
    for _ in range(2000):
        t.write(f"{story()} {random.choice(good) if random.random() < 0.8 else random.choice(bad)}\n")
        base = random.choice(bases)
        u.write(" ".join(map(str, units(base, 32))) + "\n")
with tarfile.open("items.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
        tf.addfile(ti, io.BytesIO(data))
    for i in range(40):
        base = random.choice(bases)
        cands = [{"text": random.choice(good), "label": 1}, {"text": random.choice(bad), "label": 0}]
        cu = [units(base, 8, 24), [random.randrange(40) for _ in range(8)]]
        if i % 2:
            cands.reverse(); cu.reverse()
        key = f"s{i:03d}"
        add(key + ".json", json.dumps({"id": key, "task": "cloze", "lang": "en", "category": "story",
                                       "context": {"text": story()}, "candidates": cands}).encode())
        add(key + ".ctx.units", " ".join(map(str, units(base, 24))).encode())
        for k in range(2):
            add(f"{key}.c{k}.units", " ".join(map(str, cu[k])).encode())
PY
for n in 5 50 2000; do
    head -n $n text.txt | "$BIN/s2s-lm" train --order 3 -o "t$n.arpa" 2>/dev/null || fail "train text $n"
    head -n $n units.txt | "$BIN/s2s-lm" train --order 4 --tok units -o "u$n.arpa" 2>/dev/null \
        || fail "train units $n"
done
SWEEP=(--lm 5=ngram:t5.arpa,u5.arpa --lm 50=ngram:t50.arpa,u50.arpa --lm 2000=ngram:t2000.arpa,u2000.arpa)

"$BIN/s2s-score" --mode t2t,s2s "${SWEEP[@]}" -o sw items.tar > sw.out 2> sw.err \
    || fail "sweep: $(cat sw.err)"
grep -q "^chart: sw/sweep.svg$" sw.out || fail "no chart line: $(cat sw.out)"
grep -q "^== 50 (ngram:t50.arpa,u50.arpa)$" sw.out || fail "no per-model table"
for n in 5 50 2000; do
    "$BIN/s2s-score" --mode t2t,s2s --lm "ngram:t$n.arpa,u$n.arpa" -o "one$n" items.tar > /dev/null \
        2>&1 || fail "single run $n"
    cmp "sw/$n/report.json" "one$n/report.json" || fail "sweep report $n differs from a single run"
    cmp "sw/$n/pairs.jsonl" "one$n/pairs.jsonl" || fail "sweep pairs $n differ from a single run"
done
python3 - <<'PY' || fail "sweep report.json"
import json
r = json.load(open("sw/report.json"))
assert list(r) == ["tool", "version", "sweep"] and r["tool"] == "s2s-score", list(r)
assert [e["label"] for e in r["sweep"]] == ["5", "50", "2000"]
for e in r["sweep"]:
    assert list(e) == ["label", "report"]
    assert e["report"] == json.load(open(f"sw/{e['label']}/report.json")), e["label"]
    assert set(e["report"]["modes"]) == {"t2t", "s2s"}
acc = {m: [e["report"]["modes"][m]["accuracy"] for e in r["sweep"]] for m in ("t2t", "s2s")}
assert len({tuple(v) for v in acc.values()}) == 2
for m, v in acc.items():  # more training text: a better model
    assert v[2] > v[0] and v[2] > 0.8, (m, v)
PY
xmllint --noout sw/sweep.svg || fail "sweep.svg is not well-formed XML"
xmllint --noout one5/report.svg || fail "report.svg is not well-formed XML"
python3 - <<'PY' || fail "sweep.svg curves"
import xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse("sw/sweep.svg").getroot()
assert root.tag == ns + "svg", root.tag
curves = [g for g in root.iter(ns + "g") if g.get("class") == "curve"]
acc = sorted(g.get("data-mode") for g in curves if g.get("data-series") == "accuracy")
assert acc == ["s2s", "t2t"], acc
for g in curves:
    if g.get("data-series") == "accuracy":
        pts = g.findall(ns + "circle")
        assert len(pts) == 3, (g.get("data-mode"), len(pts))
for s in ("plausible", "implausible"):
    assert sorted(g.get("data-mode") for g in curves if g.get("data-series") == s) == ["s2s", "t2t"], s
labels = [t.text for t in root.iter(ns + "text")]
assert "2000" in labels, labels
PY

# from stdin: the input is kept in a temporary file for every model, then removed
mkdir tmp
TMPDIR=$T/tmp "$BIN/s2s-score" --mode t2t,s2s "${SWEEP[@]}" -o swin < items.tar > /dev/null 2>&1 \
    || fail "sweep from stdin"
[ -z "$(ls -A tmp)" ] || fail "temporary files left: $(ls tmp)"
python3 -c '
import json
a, b = json.load(open("sw/report.json")), json.load(open("swin/report.json"))
for x, y in zip(a["sweep"], b["sweep"]):
    assert y["report"]["run"]["inputs"] == []
    x["report"]["run"]["inputs"] = y["report"]["run"]["inputs"] = None
assert a == b' || fail "sweep from stdin differs"

# a rerun: every model answered from the cache, the same bytes
cp sw/report.json sw1.json && cp sw/sweep.svg sw1.svg
"$BIN/s2s-score" --mode t2t,s2s "${SWEEP[@]}" -o sw items.tar > /dev/null 2> sw2.err || fail "rerun"
for n in 5 50 2000; do
    grep -q "^s2s-score: $n: 160 of 160 candidate scores from sw/scores.cache.jsonl, 0 asked" sw2.err \
        || fail "rerun of $n not from the cache: $(cat sw2.err)"
done
[ "$(grep -c 'candidate scores from' sw2.err)" = 3 ] || fail "rerun not from the cache: $(cat sw2.err)"
cmp sw/report.json sw1.json && cmp sw/sweep.svg sw1.svg || fail "rerun of the sweep differs"

# a sweep that fails on its third model resumes with the first two from the cache
mv u2000.arpa u2000.bak
set +e
"$BIN/s2s-score" --mode t2t,s2s "${SWEEP[@]}" -o sw3 items.tar > /dev/null 2> sw3.err; rc=$?
set -e
[ "$rc" = 3 ] && grep -q "^s2s-score: 2000: .*u2000.arpa" sw3.err || fail "missing model: exit $rc: $(cat sw3.err)"
[ ! -e sw3/report.json ] && [ ! -e sw3/sweep.svg ] || fail "sweep outputs after a failure"
mv u2000.bak u2000.arpa
"$BIN/s2s-score" --mode t2t,s2s "${SWEEP[@]}" -o sw3 items.tar > /dev/null 2> sw4.err || fail "resumed sweep"
grep -q "^s2s-score: 50: 160 of 160 candidate scores from" sw4.err \
    && ! grep -q "^s2s-score: 2000: .*candidate scores from" sw4.err || fail "resumed sweep: $(cat sw4.err)"
cmp sw3/report.json sw/report.json && cmp sw3/sweep.svg sw/sweep.svg || fail "resumed sweep differs"

# a spec with '=' after its kind is not a label; a label may precede such a spec
"$BIN/s2s-score" --lm 'ngram:t50.arpa?cache=0.1' -o c1 items.tar > /dev/null 2>&1 || fail "spec with ="
"$BIN/s2s-score" --lm 'x=ngram:t50.arpa?cache=0.1' -o c2 items.tar > /dev/null 2>&1 || fail "label=spec with ="
python3 -c '
import json
a, b = json.load(open("c1/report.json")), json.load(open("c2/report.json"))
assert "modes" in a and b["sweep"][0]["label"] == "x" and b["sweep"][0]["report"] == a' \
    || fail "spec with = / label"
# usage errors
for args in "--lm a=ngram:t5.arpa --lm ngram:t50.arpa" "--lm a=ngram:t5.arpa --lm a=ngram:t50.arpa" \
    "--lm a/b=ngram:t5.arpa" "--lm .x=ngram:t5.arpa" "--lm ngram:t5.arpa --lm ngram:t50.arpa" \
    "--lm a=ngram:t5.arpa --lm b=ngram:t50.arpa --model-id m"; do
    set +e; "$BIN/s2s-score" $args -o u items.tar > /dev/null 2> u.err; rc=$?; set -e
    [ "$rc" = 2 ] || fail "s2s-score $args: exit $rc, want 2 ($(cat u.err))"
done
[ ! -e u ] || fail "usage error created the output directory"
echo "score_sweep.sh: ok"
