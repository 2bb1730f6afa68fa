#!/usr/bin/env bash
# recipe-with-codebook.sh RECIPE CODEBOOK OUT.recipe
#
# Writes OUT.recipe: RECIPE (a file, or the name of a shipped recipe in manifests/) with its
# `codebook = ...` line replaced by the absolute path of CODEBOOK and a relative `root = ...`
# made absolute, so that `s2s-build OUT.recipe --shard I/N` works from any directory and every
# part tokenizes with the same codebook. (`--shard` refuses `codebook = train K`: each part would
# learn its own units.) Run it once, before the parts; every part must use the same OUT.recipe.
#
# Example:
#   s2s-build samples -o one                       # trains codebook-samples-k50.cb once
#   scripts/fanout/recipe-with-codebook.sh samples one/codebook-samples-k50.cb parts/samples.recipe
#   s2s-build parts/samples.recipe --shard 0/3 -o parts/0    # ... 1/3, 2/3, anywhere
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: recipe-with-codebook.sh RECIPE CODEBOOK OUT.recipe" >&2
  exit 2
fi
recipe=$1 codebook=$2 out=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -f "$recipe" ]; then
  for d in "${S2S_SRC:-}" "$here/../.."; do
    if [ -n "$d" ] && [ -f "$d/manifests/$recipe.recipe" ]; then
      recipe=$d/manifests/$recipe.recipe
      break
    fi
  done
fi
[ -f "$recipe" ] || { echo "recipe-with-codebook.sh: no recipe '$recipe' (a file, or a name in manifests/)" >&2; exit 2; }
[ -f "$codebook" ] || { echo "recipe-with-codebook.sh: codebook '$codebook' does not exist" >&2; exit 2; }
rdir=$(cd "$(dirname "$recipe")" && pwd)
cb=$(cd "$(dirname "$codebook")" && pwd)/$(basename "$codebook")
mkdir -p "$(dirname "$out")"
tmp=$out.tmp-$$
trap 'rm -f "$tmp"' EXIT
awk -v rdir="$rdir" -v cb="$cb" -v src="$recipe" '
  BEGIN { print "# " src " with codebook = FILE, for s2s-build --shard I/N (scripts/fanout/recipe-with-codebook.sh)"; seen = 0 }
  /^[ \t]*codebook[ \t]*=/ { print "codebook = " cb; seen = 1; next }
  /^[ \t]*root[ \t]*=/ {
    v = $0; sub(/^[ \t]*root[ \t]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
    if (substr(v, 1, 1) != "/") v = rdir "/" v
    print "root = " v; next
  }
  { print }
  END { if (!seen) print "codebook = " cb }
' "$recipe" > "$tmp"
mv "$tmp" "$out"
trap - EXIT
