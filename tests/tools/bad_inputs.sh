#!/usr/bin/env bash
# The bad-input matrix: runs every case of tests/bad-inputs/cases.tsv for real with the built
# tools and checks exit status, message, and that nothing partial is left and nothing earlier lost.
#
# cases.tsv columns (TAB-separated; '#' lines are comments):
#   id        case name
#   cmd       the command line, run by bash in a fresh directory with $S2S_BIN first in PATH;
#             stdout goes to .stdout unless the command redirects it. "@SIGINT cmd" / "@SIGTERM
#             cmd": cmd reads stdin.part1 from a pipe, gets the signal while it waits for more,
#             then stdin.part2 arrives (the tool must stop at the next item, not finish); without
#             stdin.part1/2 (s2s-build) the signal comes once the tool has been at work ~1.5 s.
#   gen       shell run first in that directory to make the inputs; helpers: gen (gen.py),
#             need TOOL, mount_tmpfs DIR SIZE (a small file system that fills up), mount_ro DIR
#             (read-only), pack N DIR [PACKOPTS] (shards of an N-item stream), lm_arpa FILE,
#             codebook FILE [K] (trained by s2s-tokenize), need_worker (the test worker exists).
#             Exit 77 = skip (the reason is printed).
#   status    expected exit status
#   regex     extended regex the stderr must match (it names file:line, sample or member)
#   absent    paths (globs) that must not exist afterwards ("-": none); *.tmp-* files are never
#             allowed anywhere in the directory
#   keep      files made by gen that must be byte-identical afterwards ("-": none)
# A case whose tool is not built is SKIPped with the reason. Env: S2S_BAD_ONLY=REGEX runs the
# matching case ids only; S2S_BAD_RESULTS=FILE writes id<TAB>result lines (for gen-doc).
set -euo pipefail
: "${S2S_BIN:?}" "${S2S_SRC:?}"
CASES=${S2S_BAD_CASES:-$S2S_SRC/tests/bad-inputs/cases.tsv}
GEN="$S2S_SRC/tests/bad-inputs/gen.py"
TOP=$(mktemp -d)
MOUNTS="$TOP/.mounts"
: >"$MOUNTS"
cleanup() {
  local m
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done <"$MOUNTS"
  rm -rf "$TOP"
}
trap cleanup EXIT

export BAD_GEN=$GEN BAD_MOUNTS=$MOUNTS BAD_BIN=$S2S_BIN
# ---- helpers for the gen column (run in a subshell in the case directory) --------------------
helpers=$(cat <<'EOF'
gen() { python3 -S "$BAD_GEN" "$@"; }
skip() { echo "$*" > .skip; exit 77; }
need() { [ -x "$BAD_BIN/$1" ] || skip "needs $1 (not built yet)"; }
need_worker() { [ -f "$S2S_SRC/tests/workers/fault_worker.py" ] || skip "needs tests/workers/fault_worker.py"; }
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" 2>/dev/null || skip "cannot mount a tmpfs (not root?)"
  echo "$PWD/$1" >> "$BAD_MOUNTS"
}
mount_ro() {
  mkdir -p "$1"
  mount -t tmpfs -o ro,size=64k tmpfs "$1" 2>/dev/null || skip "cannot mount a read-only tmpfs"
  echo "$PWD/$1" >> "$BAD_MOUNTS"
}
pack() { # N DIR [opts...]: a stream of N items with audio packed into DIR (2 per shard)
  need s2s-pack
  local n=$1 d=$2; shift 2
  gen stream "$n" .pack-in.tar
  mkdir -p "$d"
  "$BAD_BIN/s2s-pack" -q -o "$d/t-%06d.tar" -n 2 "$@" .pack-in.tar
  rm -f .pack-in.tar
}
codebook() { # FILE [K]: a codebook trained by s2s-tokenize on a 3-item stream
  need s2s-tokenize
  gen stream 3 .cb-in.tar
  "$BAD_BIN/s2s-tokenize" train -k "${2:-4}" -o "$1" .cb-in.tar 2>/dev/null
  rm -f .cb-in.tar
}
lm_arpa() { # FILE: a 3-gram trained by s2s-lm on a few sentences
  need s2s-lm
  printf 'the cat sat on the mat\nthe dog sat on the log\na cat and a dog\n' > .lm.txt
  "$BAD_BIN/s2s-lm" train -n 3 -o "$1" .lm.txt 2>/dev/null
}
EOF
)

pass=0 fail=0 skipped=0 n=0
results=${S2S_BAD_RESULTS:-$TOP/results.tsv}
: >"$results"
report() { # RESULT ID TEXT
  printf '%s\t%s\n' "$2" "$1" >>"$results"
  printf '%-5s %s: %s\n' "$1" "$2" "$3"
}

while IFS=$'\t' read -r id cmd gencmd status regex absent keep || [ -n "${id:-}" ]; do
  [ -z "$id" ] || [ "${id:0:1}" = "#" ] && continue
  if [ -n "${S2S_BAD_ONLY:-}" ] && ! [[ $id =~ $S2S_BAD_ONLY ]]; then continue; fi
  n=$((n + 1))
  W="$TOP/$id"
  mkdir -p "$W"
  sig=
  case $cmd in
    @SIGINT\ *) sig=INT; cmd=${cmd#@SIGINT } ;;
    @SIGTERM\ *) sig=TERM; cmd=${cmd#@SIGTERM } ;;
  esac
  rest=${cmd#! }
  while [[ $rest =~ ^[A-Za-z_][A-Za-z0-9_]*=[^\ ]*\  ]]; do rest=${rest#* }; done  # VAR=x prefixes
  tool=${rest%% *}
  if [ ! -x "$S2S_BIN/$tool" ]; then
    skipped=$((skipped + 1)); report SKIP "$id" "$tool is not built yet"; continue
  fi
  grc=0
  (cd "$W" && eval "$helpers" && eval "$gencmd") >"$W/.gen.log" 2>&1 || grc=$?
  if [ "$grc" = 77 ]; then
    skipped=$((skipped + 1)); report SKIP "$id" "$(cat "$W/.skip" 2>/dev/null || echo skipped)"
    continue
  elif [ "$grc" != 0 ]; then
    fail=$((fail + 1)); report FAIL "$id" "input generator failed: $(tail -3 "$W/.gen.log")"
    continue
  fi
  declare -A sums=()
  if [ "$keep" != "-" ] && [ -n "$keep" ]; then
    for k in $keep; do sums[$k]=$(cd "$W" && sha256sum "$k" | cut -d' ' -f1); done
  fi
  rc=0
  start=$(date +%s%N)
  if [ -z "$sig" ]; then
    (cd "$W" && PATH="$S2S_BIN:$PATH" timeout -k 5 60 bash -c "$cmd") >"$W/.stdout" 2>"$W/.stderr" || rc=$?
  else
    if [ -f "$W/stdin.part1" ] && [ -f "$W/stdin.part2" ]; then
      mkfifo "$W/.fifo"
      (cd "$W" && cat stdin.part1 && while [ ! -e .go ]; do sleep 0.05; done && cat stdin.part2) \
        >"$W/.fifo" 2>/dev/null &
      feeder=$!
      # job control on: a background job of a script would otherwise start with SIGINT ignored
      set -m
      (cd "$W" && PATH="$S2S_BIN:$PATH" exec bash -c "exec $cmd") <"$W/.fifo" >"$W/.stdout" 2>"$W/.stderr" &
      pid=$!
      set +m
    else # no stdin parts: a tool that works on its own for a while (s2s-build); signal after 1.5 s
      feeder=
      set -m
      (cd "$W" && PATH="$S2S_BIN:$PATH" exec bash -c "exec $cmd") </dev/null >"$W/.stdout" 2>"$W/.stderr" &
      pid=$!
      set +m
      sleep 1.2
    fi
    # signal once the tool is at work (its temporary output exists, or it wrote something)
    for _ in $(seq 100); do
      [ -s "$W/.stdout" ] || [ -s "$W/.stderr" ] || [ -n "$(find "$W" -name '*.tmp-*' -print -quit)" ] && break
      sleep 0.1
    done
    sleep 0.3
    kill -s "$sig" "$pid" 2>/dev/null || true
    touch "$W/.go"
    (sleep 30 && kill -9 "$pid" 2>/dev/null) &
    dog=$!
    wait "$pid" || rc=$?
    { kill "$dog" && wait "$dog"; } 2>/dev/null || true
    if [ -n "$feeder" ]; then
      kill "$feeder" 2>/dev/null || true
      wait "$feeder" 2>/dev/null || true
    else
      sleep 2 # children of a pipeline tool that outlive it would write now: check after that
    fi
  fi
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  why=()
  [ "$rc" = "$status" ] || why+=("exit status $rc, want $status")
  if [ "$regex" != "-" ] && ! grep -Eq -- "$regex" "$W/.stderr"; then
    why+=("stderr does not match /$regex/")
  fi
  if [ "$absent" != "-" ] && [ -n "$absent" ]; then
    for a in $absent; do
      if compgen -G "$W/$a" >/dev/null; then why+=("partial output left: $a"); fi
    done
  fi
  left=$(find "$W" -name '*.tmp-*' 2>/dev/null | sed "s|$W/||" | head -3 | tr '\n' ' ')
  [ -z "$left" ] || why+=("temporary files left: $left")
  for k in "${!sums[@]}"; do
    now=$(cd "$W" && sha256sum "$k" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$now" = "${sums[$k]}" ] || why+=("earlier file $k changed or lost")
  done
  unset sums
  msg=$(head -1 "$W/.stderr" | cut -c1-150)
  if [ ${#why[@]} -eq 0 ]; then
    pass=$((pass + 1)); report PASS "$id" "exit $rc in $ms ms: $msg"
  else
    fail=$((fail + 1))
    report FAIL "$id" "$(IFS=';'; echo "${why[*]}")"
    echo "      command: $cmd" ; sed 's/^/      stderr: /' "$W/.stderr" | head -5
  fi
done <"$CASES"

# docs/bad-inputs.md is generated from the table: it must not go stale
if [ -z "${S2S_BAD_ONLY:-}" ] && [ -z "${S2S_BAD_CASES:-}" ]; then
  if ! python3 "$S2S_SRC/tests/bad-inputs/gen-doc" | cmp -s - "$S2S_SRC/docs/bad-inputs.md"; then
    fail=$((fail + 1))
    echo "FAIL  docs/bad-inputs.md is stale: run tests/bad-inputs/gen-doc > docs/bad-inputs.md"
  fi
fi
echo "bad inputs: $n cases, $pass passed, $skipped skipped, $fail failed"
[ "$fail" = 0 ] || exit 1
