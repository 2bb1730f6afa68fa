#!/usr/bin/env bash
# Fan-out with GNU parallel: scripts/fanout/parallel.sh builds the samples recipe as 3 parts
# (2 at a time) and merges them; the result verifies and holds the same samples with the same
# bytes as a one-machine build. A rerun only verifies the finished parts (here through
# --sshloginfile with ':' = this machine, the code path of remote runs) and merges to the same
# dataset.json. A recipe that trains its codebook is refused and leaves no output.
set -euo pipefail
: "${S2S_BIN:?set S2S_BIN to the built tools}" "${S2S_SRC:?set S2S_SRC to the source root}"
if ! command -v parallel >/dev/null; then
  if [ "${CI:-}" = true ]; then
    echo "fanout_parallel.sh: FAIL: GNU parallel is not installed (scripts/install-deps.sh installs it)" >&2
    exit 1
  fi
  echo "fanout_parallel.sh: GNU parallel is not installed: not tested here (apt-get install parallel; under CI=true this fails)" >&2
  exit 0
fi
B=$S2S_BIN
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "fanout_parallel.sh: FAIL: $*" >&2
  exit 1
}
# the samples recipe with speech = ctx (all 80 items, a third of the audio: short under ASan)
sed -e 's/^speech = .*/speech = ctx/' -e "s#^root = .*#root = $S2S_SRC/data#" "$S2S_SRC/manifests/samples.recipe" >"$tmp/samples.recipe"
# a codebook, cheaply (k-means on all frames is slow under ASan): 50 units from 5000 frames of
# the speech of a few questions; the one-machine build and the parts share it
"$B/s2s-import" cmmlu --lang zh --shard 0/4 "$S2S_SRC/data/samples-zh-choice" 2>/dev/null | "$B/s2s-synth" 2>/dev/null |
  "$B/s2s-resample" --rate 16000 2>/dev/null | "$B/s2s-tokenize" train -k 50 --max-frames 5000 -o "$tmp/cb.cb" 2>/dev/null ||
  fail "training a codebook"
cb=$tmp/cb.cb
"$S2S_SRC/scripts/fanout/recipe-with-codebook.sh" "$tmp/samples.recipe" "$cb" "$tmp/s.recipe" || fail "recipe-with-codebook.sh"
t0=$(date +%s.%N)
"$B/s2s-build" "$tmp/s.recipe" -o "$tmp/one" -j 2 >"$tmp/one.log" 2>&1 || { cat "$tmp/one.log" >&2; fail "one-machine build"; }
t1=$(date +%s.%N)

# a recipe with 'codebook = train K' and no --codebook: every part fails, nothing is merged
if S2S_BIN=$B "$S2S_SRC/scripts/fanout/parallel.sh" -n 2 -j 2 samples "$tmp/badparts" "$tmp/bad" >"$tmp/bad.log" 2>&1; then
  fail "parallel.sh accepted a recipe that trains its codebook"
fi
grep -q "codebook" "$tmp/bad.log" || fail "refusal does not mention the codebook: $(cat "$tmp/bad.log")"
[ ! -e "$tmp/bad" ] || fail "failed fan-out left an output directory"

# 3 parts, 2 at a time, then merge
S2S_BIN=$B "$S2S_SRC/scripts/fanout/parallel.sh" -n 3 -j 2 -c "$cb" "$tmp/samples.recipe" "$tmp/parts" "$tmp/out" >"$tmp/par.log" 2>&1 ||
  { cat "$tmp/par.log" >&2; fail "parallel.sh"; }
t2=$(date +%s.%N)
for i in 0 1 2; do
  grep -q "^$i	s2s-build: samples: built and verified" "$tmp/par.log" || fail "part $i not built by parallel (--tag line missing)"
done
[ "$(awk 'NR > 1 && $7 == 0' "$tmp/parts/joblog" | wc -l)" = 3 ] || fail "joblog does not show 3 successful jobs"
"$B/s2s-shard" verify "$tmp/out" >/dev/null || fail "merged directory does not verify"
"$B/s2s-shard" cat "$tmp/one" >"$tmp/one.tar"
"$B/s2s-shard" cat "$tmp/out" >"$tmp/out.tar"
python3 "$S2S_SRC/tests/tools/fanout_compare.py" "$tmp/one.tar" "$tmp/out.tar" 3 || fail "fan-out result differs from the one-machine build"

# rerun through --sshloginfile (':' is this machine): parts are only verified, merge is the same
echo ":" >"$tmp/hosts"
S2S_BIN=$B "$S2S_SRC/scripts/fanout/parallel.sh" -n 3 -j 2 -S "$tmp/hosts" -c "$cb" "$tmp/samples.recipe" "$tmp/parts" "$tmp/out2" >"$tmp/par2.log" 2>&1 ||
  { cat "$tmp/par2.log" >&2; fail "parallel.sh rerun"; }
[ "$(grep -c "is a finished build" "$tmp/par2.log")" = 3 ] || fail "rerun rebuilt parts: $(cat "$tmp/par2.log")"
cmp "$tmp/out/dataset.json" "$tmp/out2/dataset.json" || fail "rerun merged to another dataset.json"
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "figures: one-machine build %.1f s; parallel.sh -n 3 -j 2 (3 parts + merge) %.1f s\n", b - a, c - b }'
echo "fanout_parallel.sh: all checks passed"
