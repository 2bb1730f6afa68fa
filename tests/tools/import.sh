#!/usr/bin/env bash
# s2s-import on the real corpora, the data/ samples, upstream-style jsonl and every bad input.
# Independent readers: python3 csv / json / tarfile, GNU tar.
set -euo pipefail

: "${S2S_BIN:?}" "${S2S_SRC:?}" "${S2S_SHARED:?}"
IMP="$S2S_BIN/s2s-import"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
SC="$S2S_SHARED/corpora/storycloze_spring2016/cloze_test_val__spring2016.csv"
CM="$S2S_SHARED/corpora/cmmlu/test"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
pass() { echo "ok: $*"; }

# expect_fail NAME PATTERN CMD... : exit status 1 and a stderr line matching PATTERN
expect_fail() {
    local name=$1 pat=$2
    shift 2
    local rc=0
    "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 1 ] || fail "$name: exit status $rc, want 1 (stderr: $(cat "$T/err"))"
    grep -Eq -- "$pat" "$T/err" || fail "$name: stderr does not match /$pat/: $(cat "$T/err")"
    pass "$name -> $(head -1 "$T/err")"
}

# ---- StoryCloze validation CSV --------------------------------------------------------------
"$IMP" storycloze "$SC" >"$T/sc.jsonl" 2>"$T/err" || fail "storycloze import: $(cat "$T/err")"
python3 - "$SC" "$T/sc.jsonl" <<'EOF' || fail "storycloze checks"
import csv, json, sys
with open(sys.argv[1], newline='', encoding='utf-8-sig') as f:
    rows = list(csv.DictReader(f))
items = [json.loads(l) for l in open(sys.argv[2], encoding='utf-8')]
assert len(rows) == 1871, len(rows)
assert len(items) == len(rows), (len(items), len(rows))
ids = [it['id'] for it in items]
assert len(set(ids)) == len(ids)
# five rows checked by hand against AnswerRightEnding
for n in (1, 3, 8, 777, 1871):
    row, it = rows[n - 1], items[n - 1]
    assert it['id'] == 'sstorycloze_%06d' % n, it['id']
    ans = int(row['AnswerRightEnding'])
    right = [i for i, c in enumerate(it['candidates']) if c['label'] == 1]
    assert right == [ans - 1], (n, right, ans)
    assert it['candidates'][ans - 1]['text'] == row['RandomFifthSentenceQuiz%d' % ans].strip()
    assert it['candidates'][2 - ans]['text'] == row['RandomFifthSentenceQuiz%d' % (3 - ans)].strip()
    ctx = ' '.join(row['InputSentence%d' % k].strip() for k in range(1, 5))
    assert it['context']['text'] == ctx, (it['context']['text'], ctx)
    assert it['source']['story_id'] == row['InputStoryid']
    assert it['task'] == 'cloze' and it['lang'] == 'en' and it['category'] == 'storycloze'
    print('row %d: AnswerRightEnding %d -> candidate %d labelled 1' % (n, ans, ans - 1))
# labels overall
ones = sum(1 for it in items if it['candidates'][0]['label'] == 1)
assert ones == sum(1 for r in rows if r['AnswerRightEnding'] == '1'), ones
EOF
pass "storycloze: 1871 items, labels of 5 rows match AnswerRightEnding"

"$IMP" storycloze -q --lang en-gb --prefix sc-val "$SC" >"$T/out" || fail "--lang/--prefix import"
head -1 "$T/out" | python3 -c 'import json,sys; it=json.loads(sys.stdin.readline()); assert it["id"]=="sc-val_000001" and it["lang"]=="en-gb", it' ||
    fail "--lang/--prefix not applied"
pass "storycloze --lang --prefix"

# ---- CMMLU test CSVs (a directory) ----------------------------------------------------------
"$IMP" cmmlu "$CM" >"$T/cm.jsonl" 2>"$T/err" || fail "cmmlu import: $(cat "$T/err")"
python3 - "$CM" "$T/cm.jsonl" <<'EOF' || fail "cmmlu checks"
import csv, glob, json, os, sys
rows = []
for p in sorted(glob.glob(os.path.join(sys.argv[1], '*.csv'))):
    with open(p, newline='', encoding='utf-8') as f:
        r = list(csv.reader(f))
    subj = os.path.basename(p)[:-4]
    rows += [(subj, k + 1, row) for k, row in enumerate(r[1:])]
items = [json.loads(l) for l in open(sys.argv[2], encoding='utf-8')]
assert len(items) == len(rows), (len(items), len(rows))
assert len({it['id'] for it in items}) == len(items)
checked = 0
for i in range(0, len(rows), 97):
    subj, n, row = rows[i]
    it = items[i]
    assert it['id'] == 'scmmlu_%s_%04d' % (subj, n), (it['id'], subj, n)
    assert it['category'] == subj and it['task'] == 'choice' and it['lang'] == 'zh'
    right = [k for k, c in enumerate(it['candidates']) if c['label'] == 1]
    assert right == ['ABCD'.index(row[6])], (it['id'], right, row[6])
    assert [c['key'] for c in it['candidates']] == list('ABCD')
    assert [c['text'] for c in it['candidates']] == [x.strip() for x in row[2:6]]
    assert it['context']['text'] == row[1].strip()
    checked += 1
print('%d questions, %d checked' % (len(items), checked))
EOF
pass "cmmlu: one item per question, right answer index = Answer"

# one file gives the same items as in the directory run
"$IMP" cmmlu "$CM/agronomy.csv" 2>/dev/null >"$T/agro.jsonl"
grep '"id":"scmmlu_agronomy_' "$T/cm.jsonl" | cmp -s - "$T/agro.jsonl" || fail "cmmlu single file differs"
pass "cmmlu single file = its part of the directory run"

# ---- --shard I/N ----------------------------------------------------------------------------
# our items start with the id (importer key order), so sed is an exact and fast id reader
ids() { sed -n 's/^{"id":"\([^"]*\)".*/\1/p'; }
# the first 600 stories keep the 28 runs fast under ASan
head -601 "$SC" >"$T/sc600.csv"
"$IMP" storycloze -q "$T/sc600.csv" | ids | sort >"$T/all.ids"
[ "$(wc -l <"$T/all.ids")" = 600 ] || fail "sc600: $(wc -l <"$T/all.ids") items"
for N in 1 2 3 4 5 6 7; do
    : >"$T/union.ids"
    for ((I = 0; I < N; I++)); do
        "$IMP" storycloze --shard "$I/$N" -q "$T/sc600.csv" | ids >>"$T/union.ids"
    done
    sort "$T/union.ids" | cmp -s - "$T/all.ids" || fail "--shard */$N: union != whole"
    [ -z "$(sort "$T/union.ids" | uniq -d)" ] || fail "--shard */$N: duplicates"
done
pass "--shard I/N for N=1..7: union = whole, no duplicates"
rc=0
"$IMP" storycloze --shard 3/3 "$SC" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--shard 3/3 exit $rc, want 2"

# ---- --tar ----------------------------------------------------------------------------------
"$IMP" storycloze --tar -o "$T/sc.tar" "$SC" 2>/dev/null || fail "--tar -o"
"$IMP" storycloze --tar "$SC" 2>/dev/null >"$T/sc-stdout.tar" || fail "--tar to stdout"
cmp -s "$T/sc.tar" "$T/sc-stdout.tar" || fail "--tar file and stdout differ"
tar -tvf "$T/sc.tar" >"$T/tar.lst" || fail "GNU tar cannot list the stream"
[ "$(wc -l <"$T/tar.lst")" = 1871 ] || fail "GNU tar lists $(wc -l <"$T/tar.lst") members"
head -1 "$T/tar.lst" | grep -q ' sstorycloze_000001.json$' || fail "first member: $(head -1 "$T/tar.lst")"
python3 - "$T/sc.tar" "$T/sc.jsonl" <<'EOF' || fail "python tarfile checks"
import json, sys, tarfile
lines = open(sys.argv[2], 'rb').read().splitlines(keepends=True)
want = [(json.loads(l)['id'] + '.json', l) for l in lines]
for mode in ('r:', 'r|'):
    with open(sys.argv[1], 'rb') as f, tarfile.open(fileobj=f, mode=mode) as t:
        got = [(m.name, t.extractfile(m).read()) for m in t]
    assert got == want, (mode, len(got), len(want))
    print(mode, len(got), 'members equal to the JSON lines')
EOF
pass "--tar: GNU tar and python tarfile r:/r| read names and bytes equal to JSON lines"
# the tar stream is read back as items by the items importer
tar -xOf "$T/sc.tar" | "$IMP" items -q | ids | cmp -s - <(ids <"$T/sc.jsonl") || fail "tar -> items"
pass "tar members re-imported as items"

# ---- data/ samples --------------------------------------------------------------------------
n=$("$IMP" storycloze -q "$S2S_SRC/data/samples-en.csv" | wc -l)
[ "$n" = 30 ] || fail "samples-en: $n items"
n=$("$IMP" storycloze -q --lang zh "$S2S_SRC/data/samples-zh.csv" | wc -l)
[ "$n" = 30 ] || fail "samples-zh: $n items"
n=$("$IMP" cmmlu -q "$S2S_SRC/data/samples-zh-choice" | wc -l)
[ "$n" = 20 ] || fail "samples-zh-choice: $n items"
python3 - "$S2S_SRC/data" <<'EOF' || fail "data/ balance"
import csv, glob, sys
for f in ('samples-en.csv', 'samples-zh.csv'):
    rows = list(csv.DictReader(open(sys.argv[1] + '/' + f, newline='', encoding='utf-8')))
    c = [r['AnswerRightEnding'] for r in rows]
    assert c.count('1') == 15 and c.count('2') == 15, (f, c)
ans = []
for f in glob.glob(sys.argv[1] + '/samples-zh-choice/*.csv'):
    ans += [r[6] for r in list(csv.reader(open(f, newline='', encoding='utf-8')))[1:]]
assert sorted(ans) == sorted('ABCD' * 5), ans
EOF
pass "data/: 30 en + 30 zh cloze, 20 zh choice, answers balanced"

# ---- s2sbench (upstream jsonl) --------------------------------------------------------------
cat >"$T/story.jsonl" <<'EOF'
{"uttid": 0, "first": "Tom lost his keys.", "last": "He found them in his coat."}
{"uttid": 1, "first": "Tom lost his keys.", "last": "He found them on Mars."}
{"uttid": "3_b", "first": "她饿了。", "last": "她睡在冰箱里。"}
{"uttid": "2_a", "first": "她饿了。", "last": "她去做饭了。"}
EOF
"$IMP" s2sbench "$T/story.jsonl" 2>/dev/null >"$T/story.items" || fail "s2sbench story import"
python3 - "$T/story.items" <<'EOF' || fail "s2sbench story items"
import json, sys
it = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]
assert [i['id'] for i in it] == ['s2sbench_0', 's2sbench_2_a'], [i['id'] for i in it]
a, b = it
assert a['lang'] == 'en' and b['lang'] == 'zh' and a['task'] == 'cloze'
assert [(c['uttid'], c['label'], c['text']) for c in a['candidates']] == [
    (0, 1, 'He found them in his coat.'), (1, 0, 'He found them on Mars.')], a
assert [(c['uttid'], c['label']) for c in b['candidates']] == [('2_a', 1), ('3_b', 0)], b
assert b['context']['text'] == '她饿了。'
EOF
pass "s2sbench story pairs (uttid N right, N+1 wrong, order-independent, uttid kept)"

cat >"$T/cmmlu.jsonl" <<'EOF'
{"uttid": "q7", "first": "水的化学式是什么？", "A": "CO2", "B": "H2O", "C": "O2", "D": "NaCl", "answer": "B"}
{"id": 8, "question": "一周有几天？", "A": "5", "B": "6", "C": "8", "D": "7", "answer": "D"}
EOF
"$IMP" s2sbench "$T/cmmlu.jsonl" 2>/dev/null >"$T/cmmlu.items" || fail "s2sbench cmmlu import"
python3 - "$T/cmmlu.items" <<'EOF' || fail "s2sbench cmmlu items"
import json, sys
it = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]
assert [i['id'] for i in it] == ['s2sbench_q7', 's2sbench_8']
assert [(c['key'], c['label'], c['uttid']) for c in it[0]['candidates']] == [
    ('A', 0, 'q7'), ('B', 1, 'q7'), ('C', 0, 'q7'), ('D', 0, 'q7')]
assert [c['label'] for c in it[1]['candidates']] == [0, 0, 0, 1]
assert it[0]['task'] == 'choice' and it[0]['lang'] == 'zh'
EOF
pass "s2sbench cmmlu form (key and uttid on every candidate)"

sed 's/"first": "Tom lost his keys.", "last": "He found them on Mars."/"first": "Tom lost a key.", "last": "x"/' \
    "$T/story.jsonl" >"$T/mismatch.jsonl"
expect_fail "s2sbench mismatched pair" 'mismatch.jsonl:2: uttid 0 .* different contexts' \
    "$IMP" s2sbench "$T/mismatch.jsonl"
[ ! -s "$T/out" ] || fail "mismatched pair: items were written before the error"
head -3 "$T/story.jsonl" >"$T/odd.jsonl"
expect_fail "s2sbench odd count" 'odd.jsonl:3: uttid 3 .*an odd number' "$IMP" s2sbench "$T/odd.jsonl"
"$IMP" s2sbench --skip-bad "$T/odd.jsonl" >"$T/out" 2>"$T/err" || fail "s2sbench --skip-bad"
[ "$(wc -l <"$T/out")" = 1 ] || fail "s2sbench --skip-bad kept $(wc -l <"$T/out") items"
grep -q '1 bad rows skipped' "$T/err" || fail "s2sbench --skip-bad count: $(cat "$T/err")"
pass "s2sbench --skip-bad skips the unpaired record and counts it"

# ---- bad inputs: exit 1 and file:line ----------------------------------------------------------
head -4 "$SC" >"$T/good.csv"
sed '3s/,1$/,3/' "$T/good.csv" >"$T/badlabel.csv"
expect_fail "bad label" 'badlabel.csv:3: AnswerRightEnding must be 1 or 2, not "3"' \
    "$IMP" storycloze "$T/badlabel.csv"
sed '1s/,AnswerRightEnding$//' "$T/good.csv" >"$T/nocol.csv"
expect_fail "missing column" 'nocol.csv:1: missing column "AnswerRightEnding"' \
    "$IMP" storycloze "$T/nocol.csv"
printf 'InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\nx,"a,b,c,d,e,f,1\ny,a,b,c,d,e,f,1\n' >"$T/unterm.csv"
expect_fail "unterminated quote" 'unterm.csv:2: unterminated quoted field' \
    "$IMP" storycloze "$T/unterm.csv"
printf 'storyid,storytitle,sentence1,sentence2,sentence3,sentence4,sentence5\nid1,Title,A.,B.,C.,D.,E.\n' >"$T/train.csv"
expect_fail "training variant" 'train.csv:1: this is ROCStories training data.*no wrong ending' \
    "$IMP" storycloze "$T/train.csv"
cp "$T/good.csv" "$T/good2.csv"
expect_fail "duplicate id" 'good2.csv:2: duplicate id "sstorycloze_000001" \(first at .*/good.csv:2\).*own --prefix' \
    "$IMP" storycloze "$T/good.csv" "$T/good2.csv"
"$IMP" storycloze -q --prefix a "$T/good.csv" >"$T/a.jsonl" && "$IMP" storycloze -q --prefix b "$T/good2.csv" >"$T/b.jsonl" ||
    fail "two files with their own prefixes"
rc=0
"$IMP" storycloze "$T/good.csv" "$T/good.csv" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'good.csv: named twice' "$T/err" || fail "same file twice: exit $rc, $(cat "$T/err")"
: >"$T/empty.csv"
expect_fail "empty csv" 'empty.csv:1: empty file' "$IMP" storycloze "$T/empty.csv"
head -1 "$SC" >"$T/header.csv"
expect_fail "header only" 'header.csv:2: no data rows' "$IMP" storycloze "$T/header.csv"
: >"$T/empty.jsonl"
expect_fail "empty jsonl" 'empty.jsonl:1: empty file' "$IMP" items "$T/empty.jsonl"
sed '2s/,"He never/,He "never/' "$T/good.csv" >"$T/stray.csv"
expect_fail "stray quote" 'stray.csv:2: stray quote' "$IMP" storycloze "$T/stray.csv"
printf ',Question,A,B,C,D,Answer\n0,q,a,b,c,d,E\n' >"$T/badans.csv"
expect_fail "cmmlu bad answer" 'badans.csv:2: Answer must be A, B, C or D' "$IMP" cmmlu "$T/badans.csv"
printf ',Question,A,B,C,Answer\n0,q,a,b,c,A\n' >"$T/cm3.csv"
expect_fail "cmmlu missing column" 'cm3.csv:1: missing column "D"' "$IMP" cmmlu "$T/cm3.csv"
rc=0
"$IMP" storycloze "$CM" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q 'test: is a directory (only cmmlu' "$T/err" || fail "storycloze DIR: exit $rc, $(cat "$T/err")"

# nothing is left behind by a failed -o
mkdir "$T/o"
expect_fail "failed -o" 'badlabel.csv:3' "$IMP" storycloze -o "$T/o/x.jsonl" "$T/badlabel.csv"
[ -z "$(ls -A "$T/o")" ] || fail "failed import left files: $(ls -A "$T/o")"
pass "failed -o leaves no file"

# --skip-bad: two bad rows skipped, counted, reported with file:line
{
    cat "$T/good.csv"
    sed -n '5s/,[12]$/,x/p' "$SC"
    sed -n '6p' "$SC" | sed 's/,[12]$//'
} >"$T/mixed.csv"
expect_fail "bad rows without --skip-bad" 'mixed.csv:5: AnswerRightEnding' "$IMP" storycloze "$T/mixed.csv"
"$IMP" storycloze --skip-bad "$T/mixed.csv" >"$T/out" 2>"$T/err" || fail "--skip-bad exit: $(cat "$T/err")"
[ "$(wc -l <"$T/out")" = 3 ] || fail "--skip-bad kept $(wc -l <"$T/out") items, want 3"
grep -q 'skipped: .*mixed.csv:5: AnswerRightEnding' "$T/err" || fail "--skip-bad reason 1: $(cat "$T/err")"
grep -q 'skipped: .*mixed.csv:6: 7 fields, the header has 8' "$T/err" || fail "--skip-bad reason 2"
grep -q '2 bad rows skipped' "$T/err" || fail "--skip-bad count: $(cat "$T/err")"
pass "--skip-bad: 3 kept, 2 skipped and reported"

# ---- items: validated, unknown fields kept, duplicates rejected ---------------------------------
cat >"$T/items.jsonl" <<'EOF'
{"id":"a-1","task":"cloze","lang":"en","context":{"text":"c"},"candidates":[{"text":"x","label":1,"extra":[1,2]},{"text":"y","label":0}],"mine":{"k":"v","n":null}}
{"id":"a-2","task":"cloze","context":{"text":"c"},"candidates":[{"text":"x","label":0},{"text":"y","label":1}]}
EOF
"$IMP" items --lang fr "$T/items.jsonl" 2>/dev/null >"$T/out" || fail "items import"
python3 - "$T/out" <<'EOF' || fail "items unknown fields"
import json, sys
a, b = [json.loads(l) for l in open(sys.argv[1])]
assert a['mine'] == {'k': 'v', 'n': None} and a['candidates'][0]['extra'] == [1, 2], a
assert a['lang'] == 'en' and b['lang'] == 'fr', (a['lang'], b['lang'])
assert a['provenance'][-1]['tool'] == 's2s-import'
EOF
pass "items: unknown fields kept, --lang fills a missing lang only"
sed -n 1p "$T/items.jsonl" >"$T/dup.jsonl"
sed -n 1p "$T/items.jsonl" >>"$T/dup.jsonl"
expect_fail "items duplicate id" 'dup.jsonl:2: duplicate id "a-1" \(first at .*dup.jsonl:1\)' "$IMP" items "$T/dup.jsonl"
printf '{"id":"a.b","task":"cloze","lang":"en","context":{"text":"c"},"candidates":[{"text":"x","label":1},{"text":"y","label":0}]}\n' >"$T/dot.jsonl"
expect_fail "items bad id" 'dot.jsonl:1: id "a.b" is not valid' "$IMP" items "$T/dot.jsonl"
printf '{"id":"a",\n' >"$T/badjson.jsonl"
expect_fail "items bad JSON" 'badjson.jsonl:1: bad JSON' "$IMP" items "$T/badjson.jsonl"

# ---- usage ----------------------------------------------------------------------------------
"$IMP" --help | grep -q 'Exit status' || fail "--help has no exit statuses"
"$IMP" --version | grep -q '^s2s-import ' || fail "--version"
rc=0
"$IMP" nosuchformat "$SC" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "unknown format exit $rc, want 2"
rc=0
"$IMP" storycloze "$T/nonexistent.csv" >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "missing file exit $rc, want 3"
rc=0
"$IMP" items --prefix x "$T/items.jsonl" >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "items --prefix exit $rc, want 2"
# stdin
"$IMP" storycloze -q <"$T/good.csv" | ids | tr '\n' ' ' | grep -q '^sstorycloze_000001 sstorycloze_000002 sstorycloze_000003 $' ||
    fail "stdin import"
pass "usage, exit statuses, stdin"
echo "import.sh: all passed"
