#!/usr/bin/env python3
"""gen.py KIND ARGS... — input generators of the bad-input matrix (tests/bad-inputs/cases.tsv).

Every generator is deterministic (no randomness without a fixed seed) and small.
  items N FILE [dup]        N valid items as JSON lines (dup: the last line repeats the first id)
  storycloze N FILE         StoryCloze Spring 2016 CSV with N rows
  cmmlu N FILE              CMMLU CSV with N rows
  s2sbench N FILE           upstream S2SBench story jsonl, N pairs
  stream N FILE [OPTS]      tar stream: KEY.json + KEY.ctx.wav + KEY.c0.wav + KEY.c1.wav per item;
                            OPTS: split (members of a sample not contiguous), dup (a key twice),
                            badwav (it_0001.ctx.wav is garbage), emptywav, cutwav (header says
                            more data than there is), notrailer (no end-of-archive marker)
  garbage BYTES FILE        seeded random bytes
  flip FILE POS             xor one byte with 0x20 (POS: byte offset, or "mid")
  cut FILE BYTES            truncate to BYTES (negative: remove that many from the end)
  latin1 FILE               a StoryCloze CSV whose row 3 is Latin-1 ("Café")
  replace FILE OLD NEW      replace a text once (for missing columns, out-of-range labels, ...)
  split FILE                FILE -> stdin.part1 (first third) and stdin.part2 (the rest), cut at
                            a line end for text and at a sample boundary for tar streams
  arpa FILE [drop]          a small 2-gram ARPA file; drop = without the \\2-grams: section
"""
import io
import json
import os
import random
import struct
import sys
import tarfile
import wave


def item(i, n=2, right=None):
    r = i % n if right is None else right
    return {"id": f"it_{i:04d}", "task": "cloze" if n == 2 else "choice", "lang": "en",
            "context": {"text": f"Story number {i} begins. Then something happens to the hero."},
            "candidates": [{"text": f"Ending {j} of story {i}." + ("" if j == r else " Or not."),
                            "label": int(j == r)} for j in range(n)]}


def wav(n, rate=16000, seed=0):
    b = io.BytesIO()
    w = wave.open(b, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(rate)
    w.writeframes(b"".join(struct.pack("<h", ((k * 977 + seed * 131) % 20000) - 10000)
                           for k in range(n)))
    w.close()
    return b.getvalue()


def tarbytes(members, trailer=True):
    b = io.BytesIO()
    t = tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT)
    for name, data in members:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    t.close()
    v = b.getvalue()
    # tarfile pads to 10 KiB records; keep exactly the end marker (or none)
    end = 0
    with tarfile.open(fileobj=io.BytesIO(v)) as t:
        for m in t:
            end = m.offset_data + ((m.size + 511) // 512) * 512
    return v[:end] + (b"\0" * 1024 if trailer else b"")


def main():
    a = sys.argv[1:]
    k = a[0]
    if k == "items":
        n, f = int(a[1]), a[2]
        its = [item(i) for i in range(n)]
        if len(a) > 3 and a[3] == "dup":
            its.append(dict(its[0]))
        with open(f, "w") as o:
            for it in its:
                o.write(json.dumps(it) + "\n")
    elif k == "storycloze":
        n, f = int(a[1]), a[2]
        with open(f, "w", newline="") as o:
            o.write("InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,"
                    "RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\r\n")
            for i in range(n):
                o.write(f'story-{i},Tom woke up {i}.,"He ate, then left.",It rained.,He ran.,'
                        f'He got wet.,He flew to the moon.,{1 + i % 2}\r\n')
    elif k == "latin1":
        f = a[1]
        with open(f, "wb") as o:
            o.write(b"InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4,"
                    b"RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\n")
            o.write(b"s-1,A.,B.,C.,D.,E.,F.,1\n")
            o.write("s-2,Caf\u00e9 time.,B.,C.,D.,E.,F.,2\n".encode("latin-1"))
    elif k == "cmmlu":
        n, f = int(a[1]), a[2]
        with open(f, "w") as o:
            o.write(",Question,A,B,C,D,Answer\n")
            for i in range(n):
                o.write(f"{i},问题{i}是什么,甲,乙,丙,丁,{'ABCD'[i % 4]}\n")
    elif k == "s2sbench":
        n, f = int(a[1]), a[2]
        with open(f, "w") as o:
            for i in range(n):
                first = f"Story {i} starts here."
                o.write(json.dumps({"uttid": 2 * i, "first": first, "last": "Good end."}) + "\n")
                o.write(json.dumps({"uttid": 2 * i + 1, "first": first, "last": "Bad end."}) + "\n")
    elif k == "stream":
        n, f = int(a[1]), a[2]
        opts = set(a[3:])
        ms = []
        for i in range(n):
            it = item(i)
            key = it["id"]
            ms.append((key + ".json", (json.dumps(it) + "\n").encode()))
            for j, s in enumerate(["ctx", "c0", "c1"]):
                w = wav(800 + 40 * j, seed=i + j)
                if i == 1 and s == "ctx":
                    if "badwav" in opts:
                        w = bytes(random.Random(1).getrandbits(8) for _ in range(700))
                    elif "emptywav" in opts:
                        w = b""
                    elif "cutwav" in opts:
                        w = w[:400]
                ms.append((f"{key}.{s}.wav", w))
        if "split" in opts and n >= 2:
            # move it_0000.c1.wav after it_0001's members
            m = ms.pop(3)
            ms.insert(8, m)
        if "dup" in opts and n >= 2:
            ms += ms[:4]
        with open(f, "wb") as o:
            o.write(tarbytes(ms, trailer="notrailer" not in opts))
    elif k == "garbage":
        n, f = int(a[1]), a[2]
        r = random.Random(12345)
        with open(f, "wb") as o:
            o.write(bytes(r.getrandbits(8) for _ in range(n)))
    elif k == "flip":
        f, pos = a[1], a[2]
        b = bytearray(open(f, "rb").read())
        p = len(b) // 2 if pos == "mid" else int(pos)
        b[p] ^= 0x20
        open(f, "wb").write(b)
    elif k == "cut":
        f, n = a[1], int(a[2])
        b = open(f, "rb").read()
        open(f, "wb").write(b[:n] if n >= 0 else b[:len(b) + n])
    elif k == "replace":
        f, old, new = a[1], a[2], a[3]
        b = open(f, "rb").read()
        if old.encode() not in b:
            sys.exit(f"gen replace: {old!r} not in {f}")
        open(f, "wb").write(b.replace(old.encode(), new.encode(), 1))
    elif k == "split":
        f = a[1]
        b = open(f, "rb").read()
        cut = len(b) // 3
        if b[257:262] == b"ustar":
            # cut at the header of a member named *.json (a sample boundary)
            off = 0
            while off < len(b):
                name = b[off:off + 100].split(b"\0")[0]
                if off >= cut and name.endswith(b".json"):
                    cut = off
                    break
                size = int(b[off + 124:off + 136].split(b"\0")[0].strip() or b"0", 8)
                off += 512 + ((size + 511) // 512) * 512
        else:
            cut = b.index(b"\n", cut) + 1
        open("stdin.part1", "wb").write(b[:cut])
        open("stdin.part2", "wb").write(b[cut:])
    elif k == "arpa":
        f = a[1]
        two = "\\2-grams:\n-0.2\t<s> a\n-0.3\ta b\n-0.4\tb </s>\n\n"
        txt = ("\\data\\\nngram 1=5\nngram 2=3\n\n\\1-grams:\n-1.0\t<s>\t-0.3\n-0.7\t</s>\n"
               "-0.5\ta\t-0.2\n-0.6\tb\t-0.1\n-1.2\t<unk>\n\n" +
               ("" if len(a) > 2 and a[2] == "drop" else two) + "\\end\\\n")
        open(f, "w").write(txt)
    else:
        sys.exit(f"gen.py: unknown generator {k}")


main()
