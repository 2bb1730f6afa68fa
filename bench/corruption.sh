#!/usr/bin/env bash
# bench/corruption.sh [BIN] — share of damaged dataset directories that `s2s-shard verify` detects.
#
# Packs a 4-sample stream with audio (WAV -> FLAC) and units into one shard, then makes damaged
# copies of the directory (shard + index + dataset.json):
#   - every byte of the shard, of its index and of dataset.json flipped (one bit, deterministic),
#   - every byte of the index and of dataset.json replaced by another value (seeded random: this
#     reaches spellings a one-bit flip cannot, e.g. a space turned into a tab),
#   - the shard cut at every 64th byte, the index and dataset.json cut at every byte,
#   - every byte flipped of a dataset.json stamped with a recipe the way s2s-build does it.
# All copies are checked by ONE `s2s-shard verify` process (one directory per copy); a copy counts
# as detected when verify names it. For dataset.json the rows also say which check caught it: the
# structure and cross-checks (keys, types, counts, names, SHA-256s against the files), the
# "self_sha256" seal, or the canonical-form check (a spelling that parses to the same content).
# For a sample of the shard flips (every 5th byte) it also runs `s2s-shard cat` — the reading path
# the scorer uses — and classifies each copy: refused with an error, or read with output identical
# to the clean shard (harmless: the flip hit nothing the reader uses), or read with DIFFERENT
# output (silently wrong — must be 0). Prints markdown rows; exits 1 unless verify detects 100% of
# every kind. Takes about a minute.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$(cd "${1:-${S2S_BIN:-$SRC/build/bin}}" && pwd)
for t in s2s-pack s2s-shard; do
  [ -x "$BIN/$t" ] || { echo "corruption.sh: $BIN/$t not built" >&2; exit 2; }
done
T=$(mktemp -d)
DMG=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
trap 'rm -rf "$T" "$DMG"' EXIT
cd "$T"
python3 "$SRC/tests/bad-inputs/gen.py" stream 4 in.tar
python3 - <<'EOF'
# add a units member per sample (text member -> gzip in the shard)
import io, tarfile
src = tarfile.open("in.tar")
out = tarfile.open("in2.tar", "w", format=tarfile.USTAR_FORMAT)
prev = None
members = [(m, src.extractfile(m).read()) for m in src]
for i, (m, data) in enumerate(members):
    out.addfile(m, io.BytesIO(data))
    key = m.name.split(".", 1)[0]
    nxt = members[i + 1][0].name.split(".", 1)[0] if i + 1 < len(members) else None
    if nxt != key:
        u = " ".join(str((j * 7) % 50) for j in range(40)).encode()
        ti = tarfile.TarInfo(key + ".ctx.units"); ti.size = len(u)
        out.addfile(ti, io.BytesIO(u))
out.close()
EOF
mkdir g
"$BIN/s2s-pack" -q -o 'g/t-%06d.tar' -n 0 in2.tar
"$BIN/s2s-shard" cat g > clean.tar

python3 - "$BIN/s2s-shard" g "$DMG" <<'EOF'
import hashlib, json, os, random, subprocess, sys
shard_bin, g, dmg = sys.argv[1], sys.argv[2], sys.argv[3]
names = ["t-000000.tar", "t-000000.tar.idx", "dataset.json"]
clean = {n: open(os.path.join(g, n), "rb").read() for n in names}
# dataset.json as s2s-build leaves it: "recipe" appended after the pack, dumped with jansson's
# JSON_INDENT(2) | JSON_PRESERVE_ORDER (the same text as Python's indent=2 for this content)
ds = json.loads(clean["dataset.json"])
text = "# a recipe\nname = t\nroot = .\nsource = storycloze en in.csv\n"
ds["recipe"] = {"name": "t", "sha256": hashlib.sha256(text.encode()).hexdigest(), "text": text}
stamped = (json.dumps(ds, indent=2, ensure_ascii=False) + "\n").encode()
rnd = random.Random(1)
cases = []  # (kind, file, damaged bytes, position, base files)
stamped_base = dict(clean, **{"dataset.json": stamped})
def flips(kind, n, data, base=clean):
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] ^= 1 << (pos % 8)
        cases.append((kind, n, bytes(b), pos, base))
def replaces(kind, n, data):
    for pos in range(len(data)):
        b = bytearray(data)
        b[pos] = (b[pos] + rnd.randrange(1, 256)) % 256
        cases.append((kind, n, bytes(b), pos, clean))
def cuts(kind, n, data, step):
    for cut in range(0, len(data), step):
        cases.append((kind, n, data[:cut], cut, clean))
cases.append(("clean copies (must pass)", "dataset.json", clean["dataset.json"], -1, clean))
cases.append(("clean copies (must pass)", "dataset.json", stamped, -1, stamped_base))
flips("shard: 1-bit flip of every byte", "t-000000.tar", clean["t-000000.tar"])
cuts("shard: cut at every 64th byte", "t-000000.tar", clean["t-000000.tar"], 64)
flips("index: 1-bit flip of every byte", "t-000000.tar.idx", clean["t-000000.tar.idx"])
replaces("index: every byte replaced (random other value)", "t-000000.tar.idx",
         clean["t-000000.tar.idx"])
cuts("index: cut at every byte", "t-000000.tar.idx", clean["t-000000.tar.idx"], 1)
flips("dataset.json: 1-bit flip of every byte", "dataset.json", clean["dataset.json"])
replaces("dataset.json: every byte replaced (random other value)", "dataset.json",
         clean["dataset.json"])
cuts("dataset.json: cut at every byte", "dataset.json", clean["dataset.json"], 1)
flips("dataset.json with a recipe (s2s-build): 1-bit flip of every byte", "dataset.json",
      stamped, stamped_base)
dirs = []
for i, (kind, n, b, pos, base) in enumerate(cases):
    d = os.path.join(dmg, f"{i:06d}")
    os.makedirs(d)
    for m in names:
        open(os.path.join(d, m), "wb").write(b if m == n else base[m])
    dirs.append(d)
# one process verifies every copy; it prints one FAILED line per damaged directory
r = subprocess.run([shard_bin, "verify", "-q"] + dirs, capture_output=True, text=True)
failed = {}
for line in r.stderr.splitlines():
    for part in line.split():
        if part.startswith(dmg + "/"):
            how = ("seal" if "self_sha256" in line else
                   "canonical" if "canonical form" in line else "structure")
            failed.setdefault(part[len(dmg) + 1:len(dmg) + 7], how)
            break
stats = {}
for i, (kind, n, b, pos, base) in enumerate(cases):
    s = stats.setdefault(kind, [0, 0, {"structure": 0, "seal": 0, "canonical": 0}])
    s[0] += 1
    how = failed.get(f"{i:06d}")
    if how:
        s[1] += 1
        s[2][how] += 1
ok = True
print("| damage | copies | detected by verify | share | dataset.json: caught by structure+cross-checks / seal / canonical form |")
print("|---|---:|---:|---:|---|")
for kind, (tot, det, by) in stats.items():
    if kind.startswith("clean"):
        ok &= det == 0
        print(f"| {kind} | {tot} | {det} (false alarms) | | |")
        continue
    ok &= det == tot
    how = (f"{by['structure']} / {by['seal']} / {by['canonical']}"
           if kind.startswith("dataset") else "")
    print(f"| {kind} | {tot} | {det} | {100.0 * det / tot:.2f}% | {how} |")
# the reading path: s2s-shard cat on every 5th shard flip
clean_out = open("clean.tar", "rb").read()
refused = same = different = 0
diff_pos = []
for i, (kind, n, b, pos, base) in enumerate(cases):
    if kind.startswith("shard: 1-bit") and pos % 5 == 0:
        p = subprocess.run([shard_bin, "cat", dirs[i]], capture_output=True)
        if p.returncode != 0:
            refused += 1
        elif p.stdout == clean_out:
            same += 1
        else:
            different += 1
            diff_pos.append(pos)
tot = refused + same + different
print(f"| shard flips read by `s2s-shard cat` (every 5th byte) | {tot} | refused {refused}, "
      f"identical output {same}, silently different {different} | "
      f"{100.0 * different / max(tot, 1):.2f}% wrong | |")
if different:
    print("silently different at shard bytes:", diff_pos[:20], file=sys.stderr)
sys.exit(0 if ok and different == 0 else 1)
EOF
