#!/usr/bin/env bash
# s2s-build --codebook FILE: parts of a recipe that trains its codebook ('codebook = train K')
# built with the codebook a whole build learned, then merged, give the same samples with the
# same bytes as the whole build; every part's dataset.json records the recipe with the codebook
# line replaced by the absolute path; --shard without it, a missing FILE and a directory are
# refused before DIR is created.
set -euo pipefail
: "${S2S_BIN:?set S2S_BIN to the built tools}" "${S2S_SRC:?set S2S_SRC to the source root}"
B=$S2S_BIN
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "build_codebook.sh: FAIL: $*" >&2
  exit 1
}
# the samples recipe (codebook = train 50), context speech only: short under ASan
sed -e 's/^speech = .*/speech = ctx/' -e "s#^root = .*#root = $S2S_SRC/data#" \
  "$S2S_SRC/manifests/samples.recipe" >"$tmp/s.recipe"
grep -q '^codebook = train' "$tmp/s.recipe" || fail "samples.recipe no longer trains its codebook"
"$B/s2s-build" "$tmp/s.recipe" -o "$tmp/one" >"$tmp/one.log" 2>&1 || { cat "$tmp/one.log" >&2; fail "whole build"; }
cb=$(ls "$tmp"/one/codebook-*.cb)
[ -f "$cb" ] || fail "the whole build kept no codebook"

# refused up front, no DIR
st=0; "$B/s2s-build" "$tmp/s.recipe" --shard 0/2 -o "$tmp/p" 2>"$tmp/e1" || st=$?
[ $st = 2 ] && grep -q -- '--codebook FILE' "$tmp/e1" || { cat "$tmp/e1" >&2; fail "--shard of a training recipe: status $st"; }
st=0; "$B/s2s-build" "$tmp/s.recipe" --codebook "$tmp/nothere.cb" -o "$tmp/p" 2>"$tmp/e2" || st=$?
[ $st = 2 ] && grep -q 'nothere.cb' "$tmp/e2" || { cat "$tmp/e2" >&2; fail "missing --codebook file: status $st"; }
st=0; "$B/s2s-build" "$tmp/s.recipe" --codebook "$tmp" -o "$tmp/p" 2>"$tmp/e3" || st=$?
[ $st = 2 ] && grep -q 'not a regular file' "$tmp/e3" || { cat "$tmp/e3" >&2; fail "--codebook DIR: status $st"; }
[ ! -e "$tmp/p" ] || fail "a refused build created its DIR"

# two parts with the whole build's codebook (given by a relative path), merged
(cd "$tmp" && for i in 0 1; do
  "$B/s2s-build" s.recipe --codebook "one/$(basename "$cb")" --shard $i/2 -o p$i >p$i.log 2>&1 ||
    { cat p$i.log >&2; exit 1; }
done) || fail "a part failed"
"$B/s2s-shard" merge "$tmp/p0" "$tmp/p1" -o "$tmp/m" >"$tmp/m.log" 2>&1 || { cat "$tmp/m.log" >&2; fail "merge"; }
"$B/s2s-shard" verify "$tmp/m" >/dev/null || fail "the merged dataset does not verify"
"$B/s2s-shard" cat "$tmp/one" >"$tmp/one.tar" && "$B/s2s-shard" cat "$tmp/m" >"$tmp/m.tar" || fail "shard cat"
python3 "$S2S_SRC/tests/tools/fanout_compare.py" "$tmp/one.tar" "$tmp/m.tar" 2 || fail "merged parts differ from the whole build"
python3 - "$tmp/p0/dataset.json" "$cb" <<'PY' || fail "recorded recipe"
import hashlib, json, sys
ds, cb = json.load(open(sys.argv[1])), sys.argv[2]
text = ds["recipe"]["text"]
lines = [l for l in text.splitlines() if l.startswith("codebook")]
assert lines == ["codebook = " + cb], lines
assert hashlib.sha256(text.encode()).hexdigest() == ds["recipe"]["sha256"]
PY
# a rerun with the same override only verifies; without it, the part is another recipe
"$B/s2s-build" "$tmp/s.recipe" --codebook "$cb" --shard 0/2 -o "$tmp/p0" 2>"$tmp/re.log" ||
  { cat "$tmp/re.log" >&2; fail "rerun of a finished part"; }
grep -q 'verifying only' "$tmp/re.log" || { cat "$tmp/re.log" >&2; fail "a rerun of a finished part did more than verify"; }
echo "build_codebook.sh: ok (2 parts with --codebook merge to the whole build's bytes)"
