#!/usr/bin/env bash
# tests/valgrind.sh [BIN] — Valgrind memcheck over a small end-to-end pipeline of every tool that
# is built (import → synth → resample → tokenize → pack → shard verify/cat/get → lm train/ppl →
# score), plus the error paths of a few bad inputs (a failing tool must free what it allocated
# too). Each step runs under
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
# and the script fails on the first memory error or definite/indirect leak (status 99), printing
# valgrind's report. BIN defaults to $S2S_BIN, then build/bin. A normal (not ASan) build is
# needed: `make && tests/valgrind.sh`. Takes about a minute (valgrind is ~20-50x slower).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:-${S2S_BIN:-$SRC/build/bin}}" && pwd)
[ -x "$BIN/s2s-import" ] || { echo "valgrind.sh: no tools in $BIN (build first)" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed" >&2; exit 2; }
if nm -u "$BIN/s2s-import" 2>/dev/null | grep -q __asan_; then
  echo "valgrind.sh: $BIN is an ASan build; valgrind needs a normal build" >&2
  exit 2
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
export S2S_NO_PROGRESS=1
# s2s-synth re-executes /proc/self/exe with LD_BIND_NOW=1 unless it is set; under valgrind
# /proc/self/exe is valgrind's own tool, which refuses to run directly
export LD_BIND_NOW=1
VG=(valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30
    --suppressions="$SRC/tests/valgrind.supp"
    # valgrind runs glibc's __libc_freeres at every exit, also in the fork()ed children of
    # s2s-synth, where it flushes the parent's input FILE and moves the shared file offset (the
    # parent then re-reads a line): a valgrind artefact, not ours (a plain run calls _exit)
    --run-libc-freeres=no)
steps=0 skipped=()
have() { [ -x "$BIN/$1" ]; }

# vg EXPECTED_STATUS TOOL ARGS... : run under memcheck; the tool's own status must be EXPECTED
# (0 for the pipeline, 1/3 for the bad inputs) and valgrind must report nothing.
vg() {
  local want=$1 tool=$2
  shift 2
  local rc=0
  "${VG[@]}" --log-file="$T/vg.log" "$BIN/$tool" "$@" >"$T/stdout" 2>"$T/stderr" || rc=$?
  if [ "$rc" = 99 ] || [ -s "$T/vg.log" ]; then
    echo "FAIL: valgrind found errors in: $tool $*" >&2
    cat "$T/vg.log" >&2
    exit 1
  fi
  if [ "$rc" != "$want" ]; then
    echo "FAIL: $tool $* exited $rc, want $want" >&2
    cat "$T/stderr" >&2
    exit 1
  fi
  steps=$((steps + 1))
  echo "ok: $tool $* (exit $rc, memcheck clean)"
}

# ---- the pipeline ---------------------------------------------------------------------------
head -n 4 "$SRC/data/samples-en.csv" > in.csv
vg 0 s2s-import storycloze -q -o items.jsonl in.csv
vg 0 s2s-import storycloze -q --tar -o items.tar in.csv
stream=
if have s2s-synth; then
  vg 0 s2s-synth --voice en-us -q -o syn.tar items.jsonl
  stream=syn.tar
else
  skipped+=(s2s-synth)
  python3 "$SRC/tests/bad-inputs/gen.py" stream 3 syn.tar
  stream=syn.tar
fi
if have s2s-resample; then
  vg 0 s2s-resample --rate 16000 -q -o rs.tar "$stream"
  vg 0 s2s-resample --rate 16000 --engine src -q -o rs2.tar "$stream"
  stream=rs.tar
else
  skipped+=(s2s-resample)
fi
if have s2s-tokenize; then
  # a codebook trained on this very stream, then units for it
  if vg 0 s2s-tokenize train -k 8 -o units.cb "$stream" 2>/dev/null; then
    vg 0 s2s-tokenize --codebook units.cb -q -o tok.tar "$stream"
    stream=tok.tar
  fi
else
  skipped+=(s2s-tokenize)
fi
if have s2s-pack; then
  mkdir sh
  vg 0 s2s-pack -q -o 'sh/t-%06d.tar' -n 2 "$stream"
  if have s2s-shard; then
    vg 0 s2s-shard verify sh
    vg 0 s2s-shard ls sh
    vg 0 s2s-shard cat sh
    key=$(awk -F'\t' '$1=="sample"{print $2; exit}' sh/t-000000.tar.idx)
    vg 0 s2s-shard get -o one.tar "$key" sh
    vg 0 s2s-shard extract -C ex sh
  fi
else
  skipped+=(s2s-pack)
fi
if have s2s-lm; then
  vg 0 s2s-lm text -o text.txt items.jsonl
  vg 0 s2s-lm train -n 3 -o lm.arpa text.txt
  vg 0 s2s-lm ppl lm.arpa text.txt
  vg 0 s2s-lm info lm.arpa
else
  skipped+=(s2s-lm)
fi
if have s2s-score && [ -d sh ] && [ -f lm.arpa ]; then
  vg 0 s2s-score --mode t2t --lm ngram:lm.arpa --bootstrap 50 -o out sh/*.tar
fi

if have s2s-build && have s2s-synth && have s2s-tokenize; then
  # the recipe driver itself (its child tools run natively)
  printf 'name = vg\nroot = .\nsource = storycloze en in.csv\nspeech = ctx\nrate = 16000\ncodebook = train 4\nper_shard = 2\nseed = 1\n' > vg.recipe
  PATH="$BIN:$PATH" vg 0 s2s-build vg.recipe -o built -j 1
fi

# ---- error paths: a failing tool frees what it allocated too ----------------------------------
python3 "$SRC/tests/bad-inputs/gen.py" storycloze 3 bad.csv
python3 "$SRC/tests/bad-inputs/gen.py" replace bad.csv 'moon.,2' 'moon.,7'
vg 1 s2s-import storycloze -o bad.jsonl bad.csv
python3 "$SRC/tests/bad-inputs/gen.py" items 3 dup.jsonl dup
vg 1 s2s-import items -o bad.jsonl dup.jsonl
if have s2s-pack; then
  python3 "$SRC/tests/bad-inputs/gen.py" stream 3 cut.tar
  python3 "$SRC/tests/bad-inputs/gen.py" cut cut.tar -2000
  mkdir -p sh2
  vg 1 s2s-pack -q -o 'sh2/t-%06d.tar' cut.tar
fi
if have s2s-shard && [ -d sh ]; then
  cp -r sh shf
  python3 "$SRC/tests/bad-inputs/gen.py" flip shf/t-000000.tar mid
  vg 1 s2s-shard verify shf
  vg 1 s2s-shard cat shf
fi
if have s2s-lm; then
  python3 "$SRC/tests/bad-inputs/gen.py" arpa bad.arpa drop
  vg 1 s2s-lm info bad.arpa
fi
if have s2s-resample; then
  python3 "$SRC/tests/bad-inputs/gen.py" stream 3 badwav.tar badwav
  vg 1 s2s-resample --rate 16000 -o x.tar badwav.tar
fi

msg="valgrind: $steps runs memcheck-clean"
[ ${#skipped[@]} -eq 0 ] || msg+="; not built (skipped): ${skipped[*]}"
echo "$msg"
