#!/usr/bin/env bash
# s2s-shard merge: the samples recipe built as 3 parts (s2s-build --shard I/3) and merged holds the
# same items with the same per-sample bytes as a one-machine build (speech = ctx: all 80 items,
# their context speech and units, a third of the audio, to keep the test short under ASan); the merged directory verifies,
# is read by s2s-score, lists its shards with the right SHA-256 (checked with Python's hashlib) and
# hard-links them (--copy copies); every way parts can fail to add up is refused with a message
# naming the part, and nothing is left at -o then.
set -euo pipefail
: "${S2S_BIN:?set S2S_BIN to the built tools}" "${S2S_SRC:?set S2S_SRC to the source root}"
B=$S2S_BIN
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "merge.sh: FAIL: $*" >&2
  exit 1
}
# expect_fail NAME PATTERN OUT merge-args...: merge must exit non-zero, say PATTERN, leave no OUT
expect_fail() {
  local name=$1 pat=$2 out=$3
  shift 3
  if "$B/s2s-shard" merge "$@" -o "$out" 2>"$tmp/err.txt"; then
    fail "$name: merge succeeded"
  fi
  grep -q -- "$pat" "$tmp/err.txt" || fail "$name: message lacks '$pat': $(cat "$tmp/err.txt")"
  [ ! -e "$out" ] || fail "$name: $out exists after a failed merge"
  if ls "$tmp" | grep -q 'tmp-merge'; then fail "$name: temporary directory left"; fi
  echo "ok: $name: $(cat "$tmp/err.txt")"
}
# 1. the samples recipe with speech = ctx, a codebook file, and the one-machine build with it
sed -e 's/^speech = .*/speech = ctx/' -e "s#^root = .*#root = $S2S_SRC/data#" "$S2S_SRC/manifests/samples.recipe" >"$tmp/samples.recipe"
grep -q '^speech = ctx$' "$tmp/samples.recipe" || fail "samples recipe has no speech line"
# a codebook, cheaply (k-means on all frames is slow under ASan): 50 units from 5000 frames of
# the speech of a few questions; the one-machine build and the parts share it
"$B/s2s-import" cmmlu --lang zh --shard 0/4 "$S2S_SRC/data/samples-zh-choice" 2>/dev/null | "$B/s2s-synth" 2>/dev/null |
  "$B/s2s-resample" --rate 16000 2>/dev/null | "$B/s2s-tokenize" train -k 50 --max-frames 5000 -o "$tmp/cb.cb" 2>/dev/null ||
  fail "training a codebook"
cb=$tmp/cb.cb
"$S2S_SRC/scripts/fanout/recipe-with-codebook.sh" "$tmp/samples.recipe" "$cb" "$tmp/s.recipe" || fail "recipe-with-codebook.sh"
grep -q "^codebook = $cb\$" "$tmp/s.recipe" || fail "derived recipe lacks the codebook line"
t0=$(date +%s.%N)
"$B/s2s-build" "$tmp/s.recipe" -o "$tmp/one" -j 2 >"$tmp/one.log" 2>&1 || { cat "$tmp/one.log" >&2; fail "one-machine build"; }
t1=$(date +%s.%N)
# --shard refuses a recipe that trains its codebook
if "$B/s2s-build" samples --shard 0/3 -o "$tmp/bad" 2>"$tmp/err.txt"; then fail "--shard with codebook = train accepted"; fi
grep -q "codebook" "$tmp/err.txt" || fail "--shard refusal does not mention the codebook"

# 2. three parts, two at a time (2 cores)
build_part() { "$B/s2s-build" "$1" --shard "$2" -o "$3" -j 1 >"$3.log" 2>&1 || { cat "$3.log" >&2; return 1; }; }
build_part "$tmp/s.recipe" 0/3 "$tmp/p0" &
pid0=$!
build_part "$tmp/s.recipe" 1/3 "$tmp/p1" &
pid1=$!
wait $pid0 || fail "part 0/3"
build_part "$tmp/s.recipe" 2/3 "$tmp/p2" || fail "part 2/3"
wait $pid1 || fail "part 1/3"
t2=$(date +%s.%N)
ls "$tmp/p1" | grep -q '^samples-p1of3-000000\.tar$' || fail "part 1 shard not named samples-p1of3-000000.tar"

# 3. merge (arguments in any order) and check the result
"$B/s2s-shard" merge "$tmp/p2" "$tmp/p0" "$tmp/p1" -o "$tmp/m" 2>"$tmp/merge.log" || { cat "$tmp/merge.log" >&2; fail "merge"; }
t3=$(date +%s.%N)
grep -q "3 parts, 3 shards, 80 samples" "$tmp/merge.log" || fail "merge summary: $(cat "$tmp/merge.log")"
"$B/s2s-shard" verify "$tmp/m" >/dev/null || fail "merged directory does not verify"
python3 - "$tmp" <<'EOF' || fail "merged dataset.json"
import hashlib, json, os, sys
t = sys.argv[1]
one = json.load(open(t + "/one/dataset.json"))
m = json.load(open(t + "/m/dataset.json"))
parts = [json.load(open("%s/p%d/dataset.json" % (t, i))) for i in range(3)]
def check(c, msg):
    if not c:
        sys.exit("merged dataset.json: " + msg)
check(m["samples"] == one["samples"] == 80, "samples %s, one build %s" % (m["samples"], one["samples"]))
check(m["pairs"] == one["pairs"] and m["members"] == one["members"], "pairs/members differ from one build")
check(m["counts"] == one["counts"], "counts %s vs %s" % (m["counts"], one["counts"]))
check(m["shard_count"] == len(m["shards"]) == 3, "shard_count")
names = sorted(s["name"] for s in m["shards"])
check(names == ["samples-p%dof3-000000.tar" % i for i in range(3)], "shard names %s" % names)
files = sorted(f for f in os.listdir(t + "/m") if f.endswith(".tar"))
check(files == names, "files %s" % files)
for s in m["shards"]:
    p = t + "/m/" + s["name"]
    check(hashlib.sha256(open(p, "rb").read()).hexdigest() == s["sha256"], s["name"] + " sha256")
    check(hashlib.sha256(open(p + ".idx", "rb").read()).hexdigest() == s["index_sha256"], "index sha256")
    check(os.path.getsize(p) == s["size"], "size")
    i = int(s["name"].split("-p")[1][0])
    check(os.stat(p).st_ino == os.stat("%s/p%d/%s" % (t, i, s["name"])).st_ino, "not hard-linked")
mp = m["merge"]["part_list"]
check([x["part"] for x in mp] == ["0/3", "1/3", "2/3"], "merge.part_list %s" % mp)
for i, x in enumerate(mp):
    h = hashlib.sha256(open("%s/p%d/dataset.json" % (t, i), "rb").read()).hexdigest()
    check(x["dataset_sha256"] == h, "part %d dataset_sha256" % i)
    check(x["samples"] == parts[i]["samples"], "part %d samples" % i)
check(sum(p["samples"] for p in parts) == 80, "parts add up")
check(m["recipe"]["sha256"] == parts[0]["recipe"]["sha256"] and "part" not in m["recipe"], "recipe")
# provenance: every record but the import's (which carries "shard") as in the one-machine build
key = lambda r: json.dumps(r, sort_keys=True)
a = sorted(key(r) for r in one["provenance"] if r["tool"] != "s2s-import")
b = sorted(key(r) for r in m["provenance"] if r["tool"] != "s2s-import")
check(a == b, "provenance differs from the one-machine build:\n%s\n%s" % (a, b))
print("ok: merged dataset.json: 80 samples, 3 hard-linked shards, SHA-256 and counts right")
EOF
# same items, same per-sample bytes as the one-machine build (compared by name: order differs)
"$B/s2s-shard" cat "$tmp/one" >"$tmp/one.tar"
"$B/s2s-shard" cat "$tmp/m" >"$tmp/m.tar"
python3 "$S2S_SRC/tests/tools/fanout_compare.py" "$tmp/one.tar" "$tmp/m.tar" 3 || fail "merged samples differ from the one-machine build"
# GNU tar lists the same members (an independent reader of the merged shards)
diff <(tar -tf "$tmp/one.tar" | sort) <(for f in "$tmp"/m/*.tar; do tar -tf "$f"; done | sed 's/\.gz$//; s/\.flac$/.wav/' | sort) >/dev/null ||
  fail "GNU tar: merged shards do not hold the one build's members"
# s2s-score reads the merged shards and scores them as the one build (character 2-gram, t2t)
"$B/s2s-lm" text "$tmp"/one/*.tar 2>/dev/null | "$B/s2s-lm" train --order 2 --tok chars -o "$tmp/w.arpa" 2>/dev/null ||
  fail "character 2-gram"
"$B/s2s-score" --lm "ngram:$tmp/w.arpa" --mode t2t --bootstrap 0 -o "$tmp/r1" "$tmp"/one/*.tar >/dev/null 2>&1 || fail "s2s-score on the one build"
"$B/s2s-score" --lm "ngram:$tmp/w.arpa" --mode t2t --bootstrap 0 -o "$tmp/r2" "$tmp"/m/*.tar >/dev/null 2>&1 || fail "s2s-score on the merged shards"
python3 - "$tmp/r1/pairs.jsonl" "$tmp/r2/pairs.jsonl" <<'EOF' || fail "scores of merged shards differ"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
k = lambda r: json.dumps(r, sort_keys=True)
if len(a) != 120 or sorted(map(k, a)) != sorted(map(k, b)):
    sys.exit("pairs.jsonl: %d vs %d lines, or different scores" % (len(a), len(b)))
print("ok: s2s-score: the same 120 pair scores on the one build and on the merged shards")
EOF
# s2s-build sees the merged directory as a finished build of the recipe
"$B/s2s-build" "$tmp/s.recipe" -o "$tmp/m" >"$tmp/err.txt" 2>&1 || fail "s2s-build on the merged dir: $(cat "$tmp/err.txt")"
grep -q "finished build" "$tmp/err.txt" || fail "s2s-build did not take the merged dir as finished"

# --copy: same result, no shared inodes
"$B/s2s-shard" merge --copy "$tmp/p0" "$tmp/p1" "$tmp/p2" -o "$tmp/mc" 2>"$tmp/err.txt" || fail "merge --copy: $(cat "$tmp/err.txt")"
grep -q "0 files hard-linked, 6 copied" "$tmp/err.txt" || fail "merge --copy: $(cat "$tmp/err.txt")"
cmp "$tmp/m/dataset.json" "$tmp/mc/dataset.json" || fail "--copy wrote another dataset.json"
[ "$(stat -c %h "$tmp/mc/samples-p0of3-000000.tar")" = 1 ] || fail "--copy made a hard link"
"$B/s2s-shard" verify "$tmp/mc" >/dev/null || fail "--copy result does not verify"
# another file system (tmpfs /dev/shm when it is one): hard links are impossible, files are copied
if [ -d /dev/shm ] && [ -w /dev/shm ] && [ "$(stat -c %d /dev/shm)" != "$(stat -c %d "$tmp")" ]; then
  shm=$(mktemp -d /dev/shm/s2s-merge-XXXXXX)
  trap 'rm -rf "$tmp" "$shm"' EXIT
  "$B/s2s-shard" merge "$tmp/p0" "$tmp/p1" "$tmp/p2" -o "$shm/m" 2>"$tmp/err.txt" || fail "merge to /dev/shm: $(cat "$tmp/err.txt")"
  grep -q "0 files hard-linked, 6 copied" "$tmp/err.txt" || fail "merge across file systems: $(cat "$tmp/err.txt")"
  cmp "$tmp/m/dataset.json" "$shm/m/dataset.json" || fail "merge across file systems wrote another dataset.json"
  rm -rf "$shm"
  echo "ok: merge onto another file system copies (EXDEV fallback)"
fi
# the order of the arguments does not matter: byte-identical dataset.json
"$B/s2s-shard" merge -q "$tmp/p0" "$tmp/p1" "$tmp/p2" -o "$tmp/m2" || fail "merge in part order"
cmp "$tmp/m/dataset.json" "$tmp/m2/dataset.json" || fail "dataset.json depends on the argument order"

# 4. parts that do not add up
expect_fail "missing part" "missing: 1/3" "$tmp/e" "$tmp/p0" "$tmp/p2"
expect_fail "duplicate part" "part 1/3 given twice" "$tmp/e" "$tmp/p0" "$tmp/p1" "$tmp/p2" "$tmp/p1"
cp -al "$tmp/p1" "$tmp/p1copy"
expect_fail "a part twice under two names" "given twice" "$tmp/e" "$tmp/p0" "$tmp/p1" "$tmp/p1copy" "$tmp/p2"
expect_fail "a merged set merged again" "already a merged dataset" "$tmp/e" "$tmp/m"
expect_fail "merged set with parts" "already a merged dataset" "$tmp/e" "$tmp/p0" "$tmp/m"
expect_fail "not a part" "not a part" "$tmp/e" "$tmp/one"
expect_fail "not a dataset" "no dataset.json" "$tmp/e" "$tmp/p0" "$tmp/p1" "$tmp"
mkdir "$tmp/full" && touch "$tmp/full/x"
for out in "$tmp/full" "$tmp/full/x"; do
  if "$B/s2s-shard" merge "$tmp/p0" "$tmp/p1" "$tmp/p2" -o "$out" 2>"$tmp/err.txt"; then fail "merged into $out"; fi
  grep -q "not an empty directory" "$tmp/err.txt" || fail "output not empty: $(cat "$tmp/err.txt")"
done
[ "$(ls "$tmp/full")" = x ] || fail "non-empty output dir was changed"
mkdir "$tmp/empty"
"$B/s2s-shard" merge -q "$tmp/p0" "$tmp/p1" "$tmp/p2" -o "$tmp/empty" || fail "merge into an empty directory"
echo "ok: output: an existing non-empty directory or file refused, an empty directory used"
# a part of another recipe (only the choice questions: another recipe text, another SHA-256)
grep -v 'samples-en.csv\|samples-zh.csv' "$tmp/s.recipe" >"$tmp/other.recipe"
build_part "$tmp/other.recipe" 1/3 "$tmp/o1" || fail "part of the other recipe"
expect_fail "part of another recipe" "recipe SHA-256" "$tmp/e" "$tmp/p0" "$tmp/o1" "$tmp/p2"
# a damaged part: one flipped byte in the middle of a shard (a copy, not a link, of part 1)
cp -r "$tmp/p1" "$tmp/p1bad"
f=$tmp/p1bad/samples-p1of3-000000.tar
printf '\xff' | dd of="$f" bs=1 seek=$(($(stat -c %s "$f") / 2)) conv=notrunc status=none
expect_fail "damaged part" "p1bad (part 1/3) does not verify" "$tmp/e" "$tmp/p0" "$tmp/p1bad" "$tmp/p2"
# same recipe text, another codebook file at the same path (machines that disagree): part 0 of
# the other recipe is built after the codebook file changed
"$B/s2s-shard" cat "$tmp/p0" | "$B/s2s-tokenize" train -k 8 --max-frames 5000 -o "$tmp/cb8.cb" 2>/dev/null || fail "train k=8"
cp "$tmp/cb8.cb" "$cb"
build_part "$tmp/other.recipe" 0/3 "$tmp/o0" || fail "part 0 with another codebook"
expect_fail "another codebook" "codebook" "$tmp/e" "$tmp/o1" "$tmp/o0"
grep -q "/o0: units from codebook" "$tmp/err.txt" || fail "codebook message does not name the part"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "figures: one-machine build %.1f s, 3 parts (2 at a time) %.1f s, merge %.2f s\n", b - a, c - b, d - c }'
echo "merge.sh: all checks passed"
