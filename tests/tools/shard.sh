#!/usr/bin/env bash
# s2s-pack / s2s-shard on a small real stream (sox-made WAVs), checked with independent readers:
# GNU tar, Python tarfile (r:, r|, r|*), gzip, sox; byte flips and truncations must be caught
# by verify naming the damaged member; the S2SBench export must have upstream's fields/pairing.
set -euo pipefail
: "${S2S_BIN:?}" "${S2S_SRC:?}"
T=$(mktemp -d)
# ~10k damaged copies go to tmpfs when there is one: creating/removing them on a loaded ext4
# took minutes, on /dev/shm about a second
DMG=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$T" "$DMG"' EXIT
cd "$T"
PACK="$S2S_BIN/s2s-pack"
SHARD="$S2S_BIN/s2s-shard"
die() { echo "FAIL: $*" >&2; exit 1; }

# ---- a small stream: 4 cloze (3 en, 1 zh) + 2 choice (zh, 4 candidates), WAVs from sox -------
cat > mk.py <<'EOF'
import io, json, os, subprocess, sys, tarfile
dur = float(sys.argv[1]) if len(sys.argv) > 1 else 0.3
items = []
for i in range(3):
    items.append({"id": f"sc_{i:03d}", "task": "cloze", "lang": "en", "category": "storycloze",
        "context": {"text": f"Story {i} begins. Then things happen."},
        "candidates": [{"text": f"Good end {i}.", "label": 1 if i % 2 == 0 else 0},
                       {"text": f"Bad end {i}.", "label": 0 if i % 2 == 0 else 1}],
        "provenance": [{"tool": "s2s-synth", "version": "0.1.0", "params": {"voice": "en-us"}}]})
items.append({"id": "zh_000", "task": "cloze", "lang": "zh", "context": {"text": "故事开始了。"},
    "candidates": [{"text": "好结局。", "label": 0}, {"text": "坏结局。", "label": 1}]})
for i in range(2):
    items.append({"id": f"cm_{i:03d}", "task": "choice", "lang": "zh", "category": "anatomy",
        "context": {"text": f"问题 {i}？"},
        "candidates": [{"text": t, "label": int(j == (i + 1))}
                       for j, t in enumerate(["甲", "乙", "丙", "丁"])]})
n = int(sys.argv[2]) if len(sys.argv) > 2 else len(items)
out = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.USTAR_FORMAT)
def add(name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); out.addfile(ti, io.BytesIO(data))
for k, it in enumerate(items[:n]):
    key = it["id"]
    add(key + ".json", (json.dumps(it, ensure_ascii=False) + "\n").encode())
    for j, s in enumerate(["ctx"] + [f"c{c}" for c in range(len(it["candidates"]))]):
        w = f"_w{os.getpid()}.wav"
        subprocess.run(["sox", "-D", "-n", "-r", "16000", "-b", "16", "-c", "1", w, "synth",
                        str(dur + 0.1 * ((k + j) % 4)), "sine", f"{200 + 50 * j}-{800 + 30 * k}",
                        "vol", "0.5"], check=True)
        add(f"{key}.{s}.wav", open(w, "rb").read()); os.unlink(w)
    add(key + ".ctx.units", " ".join(str((x * 7 + k) % 100) for x in range(50)).encode())
out.close()
EOF
python3 mk.py 0.3 > in.tar
mkdir a b
"$PACK" -q -o 'a/t-%06d.tar' -n 2 < in.tar || die "pack failed"
"$PACK" -q -o 'b/t-%06d.tar' --per-shard 2 in.tar || die "second pack failed"
[ "$(ls a/*.tar | wc -l)" = 3 ] || die "expected 3 shards of 2 samples, got $(ls a)"
for f in a/*; do
  cmp -s "$f" "b/$(basename "$f")" || die "two packs of the same stream differ: $f"
done
[ "$(sha256sum < a/t-000000.tar)" = "$(sha256sum < b/t-000000.tar)" ] || die "sha differs"
ls a | grep -q tmp && die "temporary files left: $(ls a)"

# ---- GNU tar lists and extracts; names and order are the index's ---------------------------
for s in a/*.tar; do
  tar -tf "$s" > names.txt || die "GNU tar cannot list $s"
  awk -F'\t' '$1=="member"{print $2}' "$s.idx" | diff - names.txt >/dev/null ||
    die "GNU tar member list differs from the index of $s"
  mkdir -p x && tar -xf "$s" -C x || die "GNU tar cannot extract $s"
done
[ -f x/sc_000.json.gz ] && [ -f x/cm_001.c3.flac ] && [ -f x/zh_000.ctx.units.gz ] ||
  die "extracted files missing: $(ls x | head)"

# ---- Python: tarfile in every mode, WebDataset grouping, gzip, FLAC vs input WAV ------------
python3 - "$T" <<'EOF' || die "python readers disagree (see above)"
import gzip, io, json, os, subprocess, sys, tarfile
T = sys.argv[1]
src = {}
with tarfile.open(os.path.join(T, "in.tar")) as t:
    for m in t:
        src[m.name] = t.extractfile(m).read()
keys_in = []
for n in src:
    k = n.split(".", 1)[0]
    if k not in keys_in: keys_in.append(k)
shards = sorted(f for f in os.listdir(os.path.join(T, "a")) if f.endswith(".tar"))
def pcm(data, ext):
    r = subprocess.run(["sox", "-t", ext, "-", "-t", "s16", "-"], input=data, capture_output=True,
                       check=True)
    return r.stdout
seen = []
for mode in ("r:", "r|", "r|*"):
    keys = []
    for sh in shards:
        with tarfile.open(os.path.join(T, "a", sh), mode) as t:
            prev = None
            for m in t:
                data = t.extractfile(m).read()
                base = os.path.basename(m.name)
                key, suffix = base.split(".", 1)       # WebDataset's rule
                if key != prev:
                    assert key not in keys, f"{mode}: sample {key} split"
                    keys.append(key); prev = key
                if mode != "r:": continue
                if suffix.endswith(".gz"):
                    plain = gzip.decompress(data)
                    orig = src[f"{key}.{suffix[:-3]}"]
                    if suffix == "json.gz":
                        assert json.loads(plain) == json.loads(orig), f"{m.name}: item changed"
                    else:
                        assert plain == orig, f"{m.name}: gzip content differs"
                    assert data[4:8] == b"\0\0\0\0", f"{m.name}: gzip mtime not 0"
                elif suffix.endswith(".flac"):
                    orig = src[f"{key}.{suffix[:-5]}.wav"]
                    assert pcm(data, "flac") == pcm(orig, "wav"), f"{m.name}: samples differ"
                else:
                    raise AssertionError(f"unexpected member {m.name}")
    assert keys == keys_in, f"{mode}: samples {keys} != {keys_in}"
    seen.append(mode)
print("python readers ok:", seen)
EOF

# ---- ffprobe agrees on the FLAC stream parameters ------------------------------------------
ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 \
  x/sc_000.ctx.flac | grep -qx 'flac,16000,1' || die "ffprobe does not see 16 kHz mono FLAC"

# ---- ls, cat, get, extract -----------------------------------------------------------------
"$SHARD" ls a > ls.txt
[ "$(wc -l < ls.txt)" = 6 ] || die "ls: expected 6 samples: $(cat ls.txt)"
"$SHARD" ls --json a | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert [s["key"] for s in d["samples"]] == ["sc_000","sc_001","sc_002","zh_000","cm_000","cm_001"], d
assert d["samples"][0]["members"][0]["name"] == "sc_000.json.gz"
assert d["n_samples"] == 6 and d["n_members"] == 34' || die "ls --json wrong"
"$SHARD" cat a > back.tar || die "cat failed"
python3 - "$T" <<'EOF' || die "cat does not give the input stream back"
import json, os, subprocess, sys, tarfile
T = sys.argv[1]
def members(p):
    with tarfile.open(p, "r|") as t:
        return [(m.name, t.extractfile(m).read()) for m in t]
a, b = members(os.path.join(T, "in.tar")), members(os.path.join(T, "back.tar"))
assert [n for n, _ in a] == [n for n, _ in b], ([n for n, _ in a][:6], [n for n, _ in b][:6])
for (n, x), (_, y) in zip(a, b):
    if n.endswith(".json"): assert json.loads(x) == json.loads(y), n
    elif n.endswith(".wav"):
        sx = subprocess.run(["sox", "-t", "wav", "-", "-t", "s16", "-"], input=x, capture_output=True).stdout
        sy = subprocess.run(["sox", "-t", "wav", "-", "-t", "s16", "-"], input=y, capture_output=True).stdout
        assert sx == sy and len(sx) > 1000, n
    else: assert x == y, n
print("cat ok:", len(b), "members")
EOF
"$SHARD" get cm_001 a > one.tar || die "get failed"
tar -tf one.tar | tr '\n' ' ' | grep -q '^cm_001.json cm_001.ctx.wav cm_001.c0.wav cm_001.c1.wav cm_001.c2.wav cm_001.c3.wav cm_001.ctx.units $' ||
  die "get gave: $(tar -tf one.tar | tr '\n' ' ')"
python3 -c '
import tarfile, sys
a = {m.name: tarfile.open(sys.argv[1]).extractfile(m).read() for m in tarfile.open(sys.argv[1])}
b = {m.name: tarfile.open(sys.argv[2]).extractfile(m).read() for m in tarfile.open(sys.argv[2]) if m.name.startswith("cm_001.")}
assert a == b, "get and cat disagree"' one.tar back.tar || die "get differs from cat"
"$SHARD" get nosuch a 2>err.txt && die "get of a missing id succeeded"
grep -q nosuch err.txt || die "get: no message naming the id"
"$SHARD" extract -C ex a || die "extract failed"
[ "$(ls ex | wc -l)" = 34 ] && cmp -s ex/sc_001.ctx.units <(tar -xOf in.tar sc_001.ctx.units) ||
  die "extract: wrong files: $(ls ex | wc -l)"

# ---- verify: clean, then every kind of damage -----------------------------------------------
"$SHARD" verify a a/t-000001.tar > v.txt || die "verify of a clean dataset failed"
grep -q "a: OK" v.txt || die "verify did not say OK"
expect_fail() { # DESC PATTERN ARGS... : verify must exit 1 and print PATTERN
  local desc=$1 pat=$2; shift 2
  if "$SHARD" verify "$@" 2> verr.txt >/dev/null; then die "$desc: verify passed"; fi
  [ -n "${SHOW:-}" ] && echo "  [$desc] $(cat verr.txt)" >&2
  grep -q -- "$pat" verr.txt || die "$desc: message lacks '$pat': $(cat verr.txt)"
}
cp -r a c
rm c/t-000001.tar.idx
expect_fail "missing index" "t-000001.tar.idx" c
expect_fail "missing index (shard)" "missing index" c/t-000001.tar
cp a/t-000000.tar.idx c/t-000001.tar.idx
expect_fail "index of another shard" "belongs to another shard" c/t-000001.tar
expect_fail "index of another shard (dir)" "t-000001.tar.idx" c
rm -rf c; cp -r a c
"$PACK" -q -o 'd/t-%06d.tar' -n 2 -z 1 < in.tar 2>/dev/null || { mkdir d && "$PACK" -q -o 'd/t-%06d.tar' -n 2 -z 1 < in.tar; }
cp d/t-000000.tar.idx c/t-000000.tar.idx
expect_fail "stale index" "t-000000.tar" c/t-000000.tar
expect_fail "stale index (dir)" "index damaged or stale" c
rm -rf c; cp -r a c
cp d/t-000000.tar c/t-000000.tar; cp d/t-000000.tar.idx c/t-000000.tar.idx
expect_fail "shard replaced with its index" "t-000000.tar" c
rm -rf c; cp -r a c
# cut in the middle of sc_001.ctx.flac's data (offset from the index: any FLAC encoder's sizes)
cut=$(awk -F'\t' '$1 == "member" && $2 == "sc_001.ctx.flac" {print $4 + int($5 / 2)}' a/t-000000.tar.idx)
[ -n "$cut" ] || die "no sc_001.ctx.flac in the index"
head -c "$cut" a/t-000000.tar > c/t-000000.tar
expect_fail "truncated shard" "truncated" c/t-000000.tar
expect_fail "truncated shard names member" "sc_001.ctx.flac" c/t-000000.tar
rm -rf c; cp -r a c
# a sample split across shards / the same key in two shards
cp a/t-000000.tar c/u-000000.tar; sed 's/t-000000.tar/u-000000.tar/' a/t-000000.tar.idx > c/u-000000.tar.idx
expect_fail "same sample in two shards" "in another shard" c/t-000000.tar c/u-000000.tar
# a key with a dot, in the index and in the stream
sed 's/^sample\tsc_000\t/sample\tsc.000\t/' a/t-000000.tar.idx > c/t-000000.tar.idx
expect_fail "key with a dot" "sc.000" c/t-000000.tar
python3 - <<'EOF'
import io, json, tarfile
out = tarfile.open("dot.tar", "w", format=tarfile.USTAR_FORMAT)
it = {"id": "a.b", "task": "cloze", "lang": "en", "context": {"text": "x"},
      "candidates": [{"text": "y", "label": 1}, {"text": "z", "label": 0}]}
d = json.dumps(it).encode(); ti = tarfile.TarInfo("a.b.json"); ti.size = len(d)
out.addfile(ti, io.BytesIO(d)); out.close()
EOF
mkdir e
if "$PACK" -q -o 'e/t-%06d.tar' dot.tar 2> perr.txt; then die "pack accepted a key with a dot"; fi
[ -z "$(ls e)" ] || die "failed pack left files: $(ls e)"
grep -q 'a' perr.txt || die "no message for the dotted key"
# a truncated input stream: pack fails and leaves nothing
head -c 30000 in.tar > cut.tar
mkdir f
if "$PACK" -q -o 'f/t-%06d.tar' -n 1 cut.tar 2> perr.txt; then die "pack accepted a truncated stream"; fi
[ -z "$(ls f)" ] || die "failed pack left files: $(ls f)"
# cat reads through the index: a flipped byte inside FLAC data fails with the member's name
rm -rf c; cp -r a c
python3 -c '
import sys; p = "c/t-000000.tar"; b = bytearray(open(p, "rb").read()); b[3000] ^= 0x10
open(p, "wb").write(b)'
if "$SHARD" cat c > /dev/null 2> cerr.txt; then die "cat of a damaged shard succeeded"; fi
grep -q "sample sc_000, member sc_000.ctx.flac" cerr.txt || die "cat: $(cat cerr.txt)"
# without an index cat still reads (plain tar), with a warning
rm -rf c; cp -r a c; rm c/t-000002.tar.idx
"$SHARD" cat c/t-000002.tar 2> cerr.txt | tar -t > /dev/null || die "cat without index failed"
grep -q "no index" cerr.txt || die "cat without index: no warning"
rm -rf c; cp -r a c
# a shard the dataset does not list, a temporary file left by a killed writer
rm -rf c; cp -r a c; cp a/t-000002.tar c/t-000003.tar
expect_fail "unlisted shard" "t-000003.tar: shard not listed" c
rm -rf c; cp -r a c; : > c/t-000003.tar.tmp-123-0
expect_fail "temporary file" "t-000003.tar.tmp-123-0: temporary file" c
rm -rf c; cp -r a c
# a damaged dataset.json count
python3 -c '
import json; d = json.load(open("a/dataset.json")); d["shards"][1]["samples"] = 3
open("c/dataset.json", "w").write(json.dumps(d))'
rm -rf c/u-* ; cp a/t-000000.tar.idx c/
expect_fail "count vs dataset.json" "dataset.json says 3" c

# ---- every byte of a one-sample shard flipped, every truncation: verify names the member ----
python3 mk.py 0.01 1 > tiny.tar
mkdir g && "$PACK" -q -o 'g/t-%06d.tar' tiny.tar
python3 - "$SHARD" g "$DMG" <<'EOF' || die "byte flips / truncations not all caught"
# one directory per damaged copy (shard + index + dataset.json), all verified by ONE process:
# fast even under ASan, and each dataset is checked on its own
import os, re, shutil, subprocess, sys
shard_bin, g, dmg = sys.argv[1], sys.argv[2], sys.argv[3]
shard = os.path.join(g, "t-000000.tar")
idx = [l.rstrip("\n").split("\t") for l in open(shard + ".idx")]
mem = [(int(f[2]), f[1]) for f in idx if f[0] == "member"]
data = open(shard, "rb").read()
idx_bytes = open(shard + ".idx", "rb").read()
ds_bytes = open(os.path.join(g, "dataset.json"), "rb").read()
def owner(pos):
    if pos >= len(data) - 1024: return "end-of-archive marker"
    o = None
    for off, name in mem:
        if off <= pos: o = name
    return o
cases = []   # (bytes, expected text in the message, what)
for pos in range(len(data)):
    b = bytearray(data); b[pos] ^= 0x01 if pos % 2 else 0x80
    cases.append((bytes(b), owner(pos), f"flip@{pos}"))
for cut in list(range(0, len(data), 61)) + [len(data) - 1, len(data) - 512, len(data) - 1024]:
    cases.append((data[:cut], "truncated", f"cut@{cut}"))
dirs = []
for i, (b, want, what) in enumerate(cases):
    d = os.path.join(dmg, f"{i:05d}")
    os.makedirs(d)
    open(os.path.join(d, "t-000000.tar"), "wb").write(b)
    open(os.path.join(d, "t-000000.tar.idx"), "wb").write(idx_bytes)
    open(os.path.join(d, "dataset.json"), "wb").write(ds_bytes)
    dirs.append(d)
r = subprocess.run([shard_bin, "verify", "-q"] + dirs, capture_output=True, text=True)
lines = {}
for l in r.stderr.splitlines():
    m = re.search(re.escape(dmg) + r"/(\d{5})/", l)
    if m: lines.setdefault(int(m.group(1)), l)
bad = [(what, want, lines.get(i)) for i, (_, want, what) in enumerate(cases)
       if i not in lines or want not in lines[i]]
for x in bad[:10]: print("not caught:", x)
print(f"{len(cases)} damaged copies ({len(data)} bytes, {len(mem)} members): "
      f"{len(bad)} not caught, verify exit {r.returncode}")
sys.exit(1 if bad or r.returncode != 1 else 0)
EOF

# ---- export to the upstream S2SBench layout ---------------------------------------------------
"$SHARD" export --layout s2sbench a -o up 2>/dev/null || die "export failed"
python3 - "$T" <<'EOF' || die "export layout wrong"
import json, os, sys, wave
T = sys.argv[1]; up = os.path.join(T, "up")
items = {}
import tarfile
with tarfile.open(os.path.join(T, "in.tar")) as t:
    for m in t:
        if m.name.endswith(".json"):
            it = json.loads(t.extractfile(m).read()); items[it["id"]] = it
story = [json.loads(l) for l in open(os.path.join(up, "sStory_s2t.jsonl"))]
assert [d["uttid"] for d in story] == list(range(6)), story
for d in story: assert set(d) >= {"uttid", "first", "last"}, d
# upstream eval_story.py: sort by uttid, pairs (2k, 2k+1), even = right, odd = wrong
for k in range(0, len(story), 2):
    e, o = story[k], story[k + 1]
    it = items[e["id"]]
    right = [c["text"] for c in it["candidates"] if c["label"] == 1][0]
    wrong = [c["text"] for c in it["candidates"] if c["label"] == 0][0]
    assert e["first"] == o["first"] == it["context"]["text"]
    assert e["last"] == right and o["last"] == wrong, (e, o)
    for u in (e["uttid"], o["uttid"]):
        w = wave.open(os.path.join(up, "sStory_s2t", f"{u}.wav"))
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnframes() > 1000
zh = [json.loads(l) for l in open(os.path.join(up, "zh_story.jsonl"))]
assert len(zh) == 2 and zh[0]["last"] == "坏结局。" and zh[1]["last"] == "好结局。", zh
cm = [json.loads(l) for l in open(os.path.join(up, "cmmlu_write_4.jsonl"))]
assert [d["uttid"] for d in cm] == [0, 1]
for d in cm:
    it = items[d["id"]]
    assert d["first"] == it["context"]["text"]
    assert [d[k] for k in "ABCD"] == [c["text"] for c in it["candidates"]]
    assert d["answer"] == "ABCD"[[c["label"] for c in it["candidates"]].index(1)]
    assert os.path.exists(os.path.join(up, "cmmlu_write_4", f"{d['uttid']}.wav"))
y = open(os.path.join(up, "eval_s2t.yaml")).read()
assert "sStory_s2t:" in y and 'path: "sStory_s2t.jsonl"' in y and "cmmlu_write_4:" in y, y
print("export ok")
EOF

# ---- round trip through s2s-import s2sbench, when it exists -----------------------------------
if [ -x "$S2S_BIN/s2s-import" ] && "$S2S_BIN/s2s-import" --help 2>&1 | grep -q s2sbench; then
  for n in sStory_s2t zh_story cmmlu_write_4; do
    "$S2S_BIN/s2s-import" s2sbench "up/$n.jsonl" > "imp-$n.jsonl" 2>imp.err ||
      die "s2s-import s2sbench up/$n.jsonl failed: $(cat imp.err)"
  done
  python3 - "$T" <<'EOF' || die "re-imported items differ"
import json, os, sys, tarfile
T = sys.argv[1]
items = {}
with tarfile.open(os.path.join(T, "in.tar")) as t:
    for m in t:
        if m.name.endswith(".json"):
            it = json.loads(t.extractfile(m).read()); items[it["id"]] = it
def norm(it):
    return (it["task"], it["context"]["text"],
            sorted((c["text"], c["label"]) for c in it["candidates"]))
n = 0
for name in ("sStory_s2t", "zh_story", "cmmlu_write_4"):
    up = [json.loads(l) for l in open(os.path.join(T, "up", name + ".jsonl"))]
    by_uttid = {d["uttid"]: d["id"] for d in up}
    imp = [json.loads(l) for l in open(os.path.join(T, f"imp-{name}.jsonl"))]
    assert len(imp) == len({d["id"] for d in up}), (name, len(imp))
    for it in imp:
        u = it["candidates"][0].get("uttid")
        src = items[by_uttid[u]]
        assert norm(it) == norm(src), (name, it, src)
        if it["task"] == "choice":
            assert [c["text"] for c in it["candidates"]] == [c["text"] for c in src["candidates"]]
        n += 1
print("re-import ok:", n, "items")
EOF
else
  echo "note: s2s-import s2sbench not available; round trip skipped"
fi

# ---- --shard I/N: parts cover every sample exactly once ----------------------------------------
mkdir p0 p1 p2
for i in 0 1 2; do "$PACK" -q -o "p$i/t-%06d.tar" --shard $i/3 in.tar || die "pack --shard $i/3"; done
"$SHARD" verify p0 p1 p2 > /dev/null || die "verify of the parts"
[ "$("$SHARD" ls p0 p1 p2 | cut -f1 | sort | tr '\n' ' ')" = "cm_000 cm_001 sc_000 sc_001 sc_002 zh_000 " ] ||
  die "parts do not cover the samples once: $("$SHARD" ls p0 p1 p2 | cut -f1 | tr '\n' ' ')"
grep -q '"part": "1/3"' p1/dataset.json || die "dataset.json does not record the part"

# ---- usage errors --------------------------------------------------------------------------
set +e
"$PACK" -o 'a/x.tar' < in.tar 2>/dev/null; [ $? = 2 ] || die "pattern without %d: want exit 2"
"$PACK" -o 'a/x-%s.tar' < in.tar 2>/dev/null; [ $? = 2 ] || die "pattern with %s: want exit 2"
"$SHARD" frobnicate 2>/dev/null; [ $? = 2 ] || die "unknown command: want exit 2"
set -e
"$PACK" --help | grep -q 'Exit status' || die "pack --help"
"$SHARD" --help | grep -q 'verify' || die "shard --help"
echo "shard.sh: all checks passed"
