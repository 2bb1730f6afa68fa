#!/usr/bin/env bash
# parallel.sh — build a recipe as N parts with GNU parallel (on this machine, or on many over
# ssh), then merge the parts into one dataset directory. docs/fanout.md.
set -euo pipefail
prog=parallel.sh
usage() {
  cat <<'EOF'
Usage: scripts/fanout/parallel.sh [OPTIONS] RECIPE PARTS_DIR OUT_DIR

Builds RECIPE as N parts with GNU parallel, one `s2s-build RECIPE --shard I/N -o PARTS_DIR/I`
per part, then `s2s-shard merge PARTS_DIR/0 .. PARTS_DIR/N-1 -o OUT_DIR`. A part that is
already built is only verified, so a failed run can be repeated: only missing parts are built.

Options:
  -n, --parts N          number of parts (default 4)
  -j, --jobs J           parts built at once (per machine with --sshloginfile; default N)
  -b, --build-jobs B     synthesis processes inside each part (s2s-build -j; default 1)
  -c, --codebook FILE    tokenize with FILE: writes PARTS_DIR/NAME.recipe (RECIPE with
                         codebook = FILE) and builds that. Needed when RECIPE says
                         `codebook = train K` (each part would learn its own units).
  -r, --root DIR         the recipe's source root (s2s-build --root)
  -S, --sshloginfile F   run the parts on the machines of F (GNU parallel's format, one
                         [ncpus/]host per line, ':' = this machine). Every machine needs the
                         same paths (PARTS_DIR, the recipe, the codebook, the sources: a shared
                         file system) and the s2s tools at the same path as here.
      --no-merge         build the parts only
  -h, --help

Tools: $S2S_BIN, else the directory of s2s-build on PATH.

Examples:
  s2s-build samples -o one            # once: trains one/codebook-samples-k50.cb
  scripts/fanout/parallel.sh -n 3 -j 2 -c one/codebook-samples-k50.cb samples parts out
  scripts/fanout/parallel.sh -n 16 -j 4 -S hosts.txt -c /nfs/cb.cb --root /nfs/corpora \
      scmmlu /nfs/parts /nfs/scmmlu

Exit status: 0 built and merged; 1 a part or the merge failed (messages say which);
2 usage; 3 a tool is missing.
EOF
}
parts=4 jobs= bjobs=1 codebook= root= sshlogin= merge=1
while [ $# -gt 0 ]; do
  case $1 in
    -n|--parts) parts=$2; shift 2 ;;
    -j|--jobs) jobs=$2; shift 2 ;;
    -b|--build-jobs) bjobs=$2; shift 2 ;;
    -c|--codebook) codebook=$2; shift 2 ;;
    -r|--root) root=$2; shift 2 ;;
    -S|--sshloginfile) sshlogin=$2; shift 2 ;;
    --no-merge) merge=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) echo "$prog: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ $# -ne 3 ]; then
  echo "$prog: need RECIPE PARTS_DIR OUT_DIR (see --help)" >&2
  exit 2
fi
recipe=$1 pdir=$2 out=$3
case $parts in ''|*[!0-9]*|0) echo "$prog: --parts must be a positive integer" >&2; exit 2 ;; esac
jobs=${jobs:-$parts}
command -v parallel >/dev/null || { echo "$prog: GNU parallel is not installed (apt-get install parallel)" >&2; exit 3; }
bin=${S2S_BIN:-}
if [ -z "$bin" ]; then
  b=$(command -v s2s-build) || { echo "$prog: s2s-build not on PATH; set S2S_BIN" >&2; exit 3; }
  bin=$(dirname "$b")
fi
bin=$(cd "$bin" && pwd)
for t in s2s-build s2s-shard; do
  [ -x "$bin/$t" ] || { echo "$prog: $bin/$t missing" >&2; exit 3; }
done
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$pdir"
pdir=$(cd "$pdir" && pwd)
if [ -n "$codebook" ]; then
  name=$(basename "$recipe" .recipe)
  "$here/recipe-with-codebook.sh" "$recipe" "$codebook" "$pdir/$name.recipe"
  recipe=$pdir/$name.recipe
elif [ -f "$recipe" ]; then
  recipe=$(cd "$(dirname "$recipe")" && pwd)/$(basename "$recipe")
fi
build=("$bin/s2s-build" "$recipe" --shard "{}/$parts" -o "$pdir/{}" -j "$bjobs")
[ -n "$root" ] && build+=(--root "$(cd "$root" && pwd)")
popts=(--will-cite --halt now,fail=1 -j "$jobs" --tag --joblog "$pdir/joblog")
if [ -n "$sshlogin" ]; then
  popts+=(--sshloginfile "$sshlogin")
  [ -n "${S2S_CORPORA:-}" ] && popts+=(--env S2S_CORPORA)
fi
start=$(date +%s.%N)
echo "$prog: $parts parts of $recipe, $jobs at a time -> $pdir/0..$((parts - 1))" >&2
# -q: the command's words are quoted for the (remote) shell as they are here
if ! parallel "${popts[@]}" -q "${build[@]}" ::: $(seq 0 $((parts - 1))); then
  echo "$prog: a part failed (see above and $pdir/joblog); rerun to build only the missing parts" >&2
  exit 1
fi
mid=$(date +%s.%N)
echo "$prog: parts built in $(awk -v a="$start" -v b="$mid" 'BEGIN { printf "%.1f", b - a }') s" >&2
[ "$merge" = 1 ] || exit 0
dirs=()
for i in $(seq 0 $((parts - 1))); do dirs+=("$pdir/$i"); done
"$bin/s2s-shard" merge "${dirs[@]}" -o "$out" || exit 1
echo "$prog: merged into $out in $(awk -v a="$mid" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" >&2
