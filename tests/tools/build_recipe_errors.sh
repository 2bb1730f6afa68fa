#!/bin/bash
# s2s-build refuses a bad recipe before any work starts: exit status 2, a message naming
# RECIPE:LINE and the cause, and no output directory created (nor its parents).
# Cases: a missing source file, an unknown importer, a language without an espeak-ng voice, an
# unknown voice, an unknown key, a missing codebook file; then a directory that is not a build
# and an interrupted build of other inputs (refused, left as they were).
set -euo pipefail
BIN=${S2S_BIN:?} SRC=${S2S_SRC:?}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export S2S_NO_PROGRESS=1

# refuses NAME LINE PATTERN: builds $T/NAME.recipe, expects status 2, "NAME.recipe:LINE:" and
# PATTERN in the message, and no $T/out-NAME (nor its parent) afterwards
refuses() {
    local name=$1 line=$2 pat=$3 st=0
    "$BIN/s2s-build" "$T/$name.recipe" -o "$T/parent-$name/out" 2>"$T/$name.err" || st=$?
    [ "$st" = 2 ] || { cat "$T/$name.err"; fail "$name: exit status $st, expected 2"; }
    grep -q "$name.recipe:$line: " "$T/$name.err" ||
        { cat "$T/$name.err"; fail "$name: message does not name $name.recipe:$line"; }
    grep -q -- "$pat" "$T/$name.err" || { cat "$T/$name.err"; fail "$name: no '$pat' in message"; }
    [ ! -e "$T/parent-$name" ] || fail "$name: the output directory (or its parent) was created"
    echo "ok: $name: $(head -1 "$T/$name.err")"
}

recipe() { # NAME, then lines after the header
    local name=$1
    shift
    {
        echo "# $name: a broken recipe"
        echo "name = $name"
        echo "root = $SRC/data"
        printf '%s\n' "$@"
    } >"$T/$name.recipe"
}

recipe missing_source "source = storycloze en samples-en.csv" "source = storycloze en no-such-file.csv"
refuses missing_source 5 "no-such-file.csv: No such file or directory"

recipe unknown_importer "source = storycloz en samples-en.csv"
refuses unknown_importer 4 "unknown importer 'storycloz' (known: storycloze, cmmlu, s2sbench, items)"

recipe no_voice "source = storycloze en samples-en.csv" "source = storycloze zz samples-zh.csv"
refuses no_voice 5 'language "zz" has no espeak-ng voice'

recipe unknown_voice "source = storycloze en samples-en.csv" "voice = en-klingon"
refuses unknown_voice 5 'unknown voice "en-klingon"'

recipe unknown_key "source = storycloze en samples-en.csv" "colour = blue"
refuses unknown_key 5 "unknown key 'colour'"

recipe missing_codebook "source = storycloze en samples-en.csv" "codebook = units-missing.cb"
refuses missing_codebook 5 "codebook .*units-missing.cb: No such file or directory"

# a language that has a voice passes the check (and then fails on purpose on the directory)
recipe fine "source = storycloze fr samples-en.csv"
mkdir -p "$T/notabuild"
echo keep >"$T/notabuild/mine.txt"
st=0
"$BIN/s2s-build" "$T/fine.recipe" -o "$T/notabuild" 2>"$T/fine.err" || st=$?
[ "$st" = 2 ] || { cat "$T/fine.err"; fail "non-empty directory: status $st, expected 2"; }
grep -q 'is neither a finished nor an interrupted build' "$T/fine.err" || fail "notabuild: message"
[ "$(ls -A "$T/notabuild")" = mine.txt ] && [ "$(cat "$T/notabuild/mine.txt")" = keep ] ||
    fail "a directory that is not a build was changed"
echo "ok: not a build: $(cat "$T/fine.err")"

# an interrupted build of other inputs: refused by its journal header, shards left alone
mkdir -p "$T/other/.build"
echo '{"journal":"s2s-build","recipe_sha256":"0000"}' >"$T/other/.build/journal"
echo shard >"$T/other/fine-000000.tar"
st=0
"$BIN/s2s-build" "$T/fine.recipe" -o "$T/other" 2>"$T/other.err" || st=$?
[ "$st" = 2 ] || { cat "$T/other.err"; fail "other inputs: status $st, expected 2"; }
grep -q 'holds an interrupted build of other inputs' "$T/other.err" ||
    { cat "$T/other.err"; fail "other inputs: message"; }
[ "$(cat "$T/other/fine-000000.tar")" = shard ] || fail "other inputs: a shard was touched"
[ ! -e "$T/other/dataset.json" ] || fail "other inputs: dataset.json written"
echo "ok: other inputs: $(grep 'other inputs' "$T/other.err")"
echo "build_recipe_errors: OK"
