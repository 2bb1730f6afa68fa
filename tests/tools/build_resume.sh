#!/bin/bash
# s2s-build resumes an interrupted build at shard granularity, and the result is byte for byte
# the result of an uninterrupted build (every shard, index, the codebook and dataset.json).
#  1. clean build A of a small samples-like recipe (6 English and 6 Chinese stories, 8 Chinese
#     4-way questions from data/: 20 items of two tasks and two languages, 4 per shard: 5
#     shards; codebook learned from the data: "codebook = train 20");
#  2. build B killed with SIGKILL while it speaks the items for the codebook (no stage survives
#     it), rerun and interrupted with SIGINT after two shards are packed (exit 130, no
#     dataset.json, the directory does not verify), rerun again: the codebook is reused, not
#     retrained, the finished shards are kept (same inode), and B equals A;
#  3. a rerun on a finished directory changes nothing;
#  4. the same with a codebook file (one synth|resample|tokenize|pack pipeline per shard),
#     interrupted by SIGTERM, one finished shard damaged before the rerun (rebuilt);
#  5. the shards equal what one plain `s2s-pack` of the whole stream writes (the chunked packing
#     and the index renaming change no byte);
#  6. an empty part (--shard I/N with no item) gives a dataset.json of no sample that verifies.
set -euo pipefail
BIN=${S2S_BIN:?} SRC=${S2S_SRC:?}
T=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export S2S_NO_PROGRESS=1

head -7 "$SRC/data/samples-en.csv" >"$T/en.csv"
head -7 "$SRC/data/samples-zh.csv" >"$T/zh.csv"
mkdir "$T/choice"
cp "$SRC/data/samples-zh-choice/daily_life.csv" "$T/choice/"
cat >"$T/rs.recipe" <<EOF
# test recipe: 20 items, 5 shards
name = rs
source = storycloze en en.csv
source = storycloze zh zh.csv
source = cmmlu zh choice
codebook = train 20
per_shard = 4
seed = 3
EOF

same_dirs() { # A B: every file of A (not .build) equals B's, and B has no other
    local a=$1 b=$2 f
    (cd "$a" && find . -path ./.build -prune -o -type f -print | sort) >"$T/la"
    (cd "$b" && find . -path ./.build -prune -o -type f -print | sort) >"$T/lb"
    cmp -s "$T/la" "$T/lb" || { diff "$T/la" "$T/lb" >&2; fail "$a and $b hold different files"; }
    while read -r f; do
        cmp "$a/$f" "$b/$f" || fail "$b/$f differs from the uninterrupted build's"
    done <"$T/la"
}

journal_shards() {
    local n
    n=$(grep -c '"shard"' "$1/.build/journal" 2>/dev/null) || true
    echo "${n:-0}"
}

# wait_for COND_CMD PID: polls until COND_CMD succeeds (fails if PID ends first or after 60 s)
wait_for() {
    local cond=$1 pid=$2 i
    for ((i = 0; i < 1200; i++)); do
        eval "$cond" && return 0
        kill -0 "$pid" 2>/dev/null || fail "the build ended before: $cond"
        sleep 0.05
    done
    fail "timeout waiting for: $cond"
}

# 1. clean build
"$BIN/s2s-build" "$T/rs.recipe" --root "$T" -o "$T/A" 2>"$T/A.log" || { cat "$T/A.log"; fail "clean build"; }
n=$(ls "$T/A"/rs-*.tar | wc -l)
[ "$n" = 5 ] || fail "expected 5 shards in the clean build, got $n"
[ ! -e "$T/A/.build" ] || fail "clean build left .build"

# The interrupted builds run a copy of s2s-build whose s2s-pack waits 0.3 s before it starts
# (s2s-build runs the tools beside itself): every shard then takes at least that long, so an
# interrupt sent within 50 ms of "N shards done" always lands before the last one, however fast
# the tools or loaded the machine. The bytes must not change (compared with A below).
mkdir "$T/paced"
cp "$BIN/s2s-build" "$T/paced/"
for t in s2s-import s2s-synth s2s-resample s2s-tokenize s2s-shard; do ln -s "$BIN/$t" "$T/paced/$t"; done
printf '#!/bin/sh\nsleep 0.3\nexec "%s/s2s-pack" "$@"\n' "$BIN" >"$T/paced/s2s-pack"
chmod +x "$T/paced/s2s-pack"

# 2. SIGKILL while the codebook's speech is made (after the first chunk's speech is complete)
build() { "$T/paced/s2s-build" "$1" --root "$T" -o "$2"; }
start() { # RECIPE DIR LOG: the build in the background, its own pid in $pid (not a subshell's)
    "$T/paced/s2s-build" "$1" --root "$T" -o "$2" 2>"$3" &
    pid=$!
    PIDS+=("$pid")
}
start "$T/rs.recipe" "$T/B" "$T/B1.log"
wait_for '[ -e "$T/B/.build/speech-000001.tar" ]' "$pid"
kill -9 "$pid"
{ wait "$pid"; } 2>/dev/null || true
[ ! -e "$T/B/dataset.json" ] || fail "a killed build left dataset.json"
sleep 0.3 # the stages get SIGTERM when the build dies (PR_SET_PDEATHSIG)
if pgrep -f "$T/B/" >/dev/null; then fail "stages of the killed build still run"; fi
#    rerun, then SIGINT after two shards are packed
start "$T/rs.recipe" "$T/B" "$T/B2.log"
wait_for '[ "$(journal_shards "$T/B")" -ge 2 ]' "$pid"
kill -INT "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 130 ] || { cat "$T/B2.log"; fail "SIGINT: exit status $st, expected 130"; }
grep -q 'resuming the interrupted build' "$T/B2.log" || fail "B: rerun did not say it resumes"
grep -q 'run the same command again to resume' "$T/B2.log" || fail "B: no resume hint"
[ ! -e "$T/B/dataset.json" ] || fail "an interrupted build left dataset.json"
if "$BIN/s2s-shard" verify "$T/B" 2>/dev/null; then fail "an interrupted build verifies"; fi
done_before=$(journal_shards "$T/B")
[ "$done_before" -lt 5 ] || fail "B finished before the interrupt (test too slow to interrupt)"
cb_before=$(stat -c '%i %Y' "$T/B/codebook-rs-k20.cb")
ino_before=$(stat -c %i "$T/B/rs-000000.tar")
build "$T/rs.recipe" "$T/B" 2>"$T/B3.log" || { cat "$T/B3.log"; fail "resume B"; }
grep -q "$done_before of 5 shard(s) done, codebook kept" "$T/B3.log" ||
    { cat "$T/B3.log"; fail "B: resume did not keep $done_before shards and the codebook"; }
if grep -q 'codebook: s2s-tokenize train' "$T/B3.log"; then fail "B: codebook retrained"; fi
[ "$(stat -c '%i %Y' "$T/B/codebook-rs-k20.cb")" = "$cb_before" ] || fail "B: codebook rewritten"
[ "$(stat -c %i "$T/B/rs-000000.tar")" = "$ino_before" ] || fail "B: finished shard 0 rebuilt"
same_dirs "$T/A" "$T/B"

# 3. rerun on a finished directory: nothing is written
sum_before=$(cd "$T/B" && find . -type f -printf '%p %i %T@\n' | sort | sha256sum)
build "$T/rs.recipe" "$T/B" 2>"$T/B4.log" || { cat "$T/B4.log"; fail "rerun"; }
grep -q 'finished build of rs; verifying only' "$T/B4.log" || fail "rerun did not say so"
[ "$(cd "$T/B" && find . -type f -printf '%p %i %T@\n' | sort | sha256sum)" = "$sum_before" ] ||
    fail "a rerun on a finished directory changed files"

# 4. a codebook file: one pipeline per shard; SIGTERM, then a shard damaged before the resume.
#    The units are those of the learned codebook, so the shards must equal A's.
cp "$T/A/codebook-rs-k20.cb" "$T/units.cb"
sed -e 's/^codebook = .*/codebook = units.cb/' "$T/rs.recipe" >"$T/rf.recipe"
start "$T/rf.recipe" "$T/E" "$T/E1.log"
wait_for '[ "$(journal_shards "$T/E")" -ge 1 ]' "$pid"
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
[ "$st" = 130 ] || fail "SIGTERM: exit status $st, expected 130"
[ ! -e "$T/E/dataset.json" ] || fail "E finished before the interrupt (test too slow to interrupt)"
printf 'X' | dd of="$T/E/rs-000000.tar" bs=1 seek=3000 conv=notrunc 2>/dev/null
build "$T/rf.recipe" "$T/E" 2>"$T/E2.log" || { cat "$T/E2.log"; fail "resume E"; }
grep -q 'shard 0 of the interrupted build does not verify' "$T/E2.log" ||
    { cat "$T/E2.log"; fail "E: the damaged shard was not noticed"; }
for f in "$T"/A/rs-*.tar "$T"/A/rs-*.tar.idx; do
    cmp "$f" "$T/E/$(basename "$f")" || fail "E: $(basename "$f") differs from A's"
done
[ "$(ls "$T"/E/rs-* | wc -l)" = 10 ] || fail "E: not 5 shards and 5 indexes"

# 5. one plain pack of the whole stream writes the same shards, indexes and dataset.json
mkdir "$T/P"
"$BIN/s2s-shard" cat "$T"/A/rs-*.tar | "$BIN/s2s-pack" -q -n 4 -o "$T/P/rs-%06d.tar"
for f in "$T"/P/rs-*; do
    cmp "$f" "$T/A/$(basename "$f")" || fail "$(basename "$f") differs from a plain pack's"
done
python3 - "$T/A/dataset.json" "$T/P/dataset.json" <<'EOF' || fail "dataset.json differs from a plain pack's (recipe aside)"
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
assert a.pop("recipe")["name"] == "rs"
assert json.dumps(a, indent=2) == json.dumps(b, indent=2), "dataset.json"
EOF
# 6. an empty part (--shard of a small dataset): a dataset.json of no sample that verifies (the
#    codebook is never read: no item to tokenize)
empty=
for i in $(seq 0 63); do # the imports s2s-build runs, ids prefixed as it does
    if [ -z "$("$BIN/s2s-import" storycloze -q --shard "$i/64" "$T/en.csv")$("$BIN/s2s-import" \
        storycloze -q --lang zh --prefix zh_sstorycloze --shard "$i/64" "$T/zh.csv")$("$BIN/s2s-import" \
        cmmlu -q --shard "$i/64" "$T/choice")" ]; then
        empty=$i
        break
    fi
done
[ -n "$empty" ] || fail "no empty part among 64 for 20 items"
"$BIN/s2s-build" "$T/rf.recipe" --root "$T" --shard "$empty/64" -o "$T/Z" 2>"$T/Z.log" ||
    { cat "$T/Z.log"; fail "empty part $empty/64"; }
python3 - "$T/Z/dataset.json" "$empty/64" <<'EOF' || fail "empty part: dataset.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["shard_count"] == 0 and d["samples"] == 0 and d["shards"] == [], d
assert d["recipe"]["part"] == sys.argv[2] and d["build"]["params"]["part"] == sys.argv[2], d
EOF

echo "build_resume: OK (20 items in 5 shards; SIGKILL, SIGINT, SIGTERM and a damaged shard resumed to identical bytes)"
