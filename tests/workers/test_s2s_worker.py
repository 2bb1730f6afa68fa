#!/usr/bin/env python3
"""The reference worker (scorer/s2s_worker.py) with a tiny model defined here, as a real second
process: every reply's NLL and token count are recomputed here independently (a regex tokenizer,
math.log of the fixed probabilities, hand-written token lists for the boundary cases).

  A. requests written straight to `python3 scorer/s2s_worker.py --model test_s2s_worker:TinyLM`
     (pipelined: all sent before the first reply is read): hello, t2t replies, the
     lm-evaluation-harness boundary rule with tokens that cross the context/candidate boundary,
     error replies, a bad line that gets no reply;
  B. the same worker through `s2s-score --lm worker:...` on a tar stream with WAV members, modes
     t2t, s2t, t2s, s2s: pairs.jsonl's nll/ntok per candidate against the independent values
     (the audio paths must be readable WAVs with the frame counts written here).

Usage: test_s2s_worker.py S2S_BIN S2S_SRC WORKDIR   (run by tests/tools/py_worker.sh)
Standard library only.
"""
import io
import json
import math
import os
import random
import re
import subprocess
import sys
import tarfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- the tiny model: greedy longest-match tokenizer, token bigram with fixed weights ------------
# Pieces beyond single characters, some of which span a context/candidate boundary ("b c", "e c").
PIECES = ["the", " the", "th", "cat", " cat", "b c", "e c", " s", "ing", "he", "at"]
CHARS = [chr(c) for c in range(32, 127)]
VOCAB = CHARS + PIECES  # ids are indexes; UNK = len(VOCAB); BOS = len(VOCAB) + 1
UNK, BOS = len(VOCAB), len(VOCAB) + 1
NTARGET = len(VOCAB) + 1  # targets: every piece and UNK (never BOS)


def weight(prev, tok):
    """Unnormalised bigram weight, 1..7: the model's fixed probabilities are weight / Z(prev)."""
    return 1 + (prev * 31 + tok * 17) % 7


def logp(prev, tok):
    z = sum(weight(prev, t) for t in range(NTARGET))
    return math.log(weight(prev, tok) / z)


def wav_frames(path):
    with wave.open(path, "rb") as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        return w.getnframes()


sys.path.insert(0, os.path.join(HERE, "..", "..", "scorer"))
import s2s_worker  # noqa: E402


class TinyLM(s2s_worker.CausalLM):
    """t2t: the bigram over the boundary rule of s2s_worker.CausalLM. Speech sides read the WAV
    the scorer wrote (frames): s2t = text NLL of the candidate after an empty context + 1e-4 per
    context frame; t2s = 1e-4 per candidate frame + 0.01 per context character, ntok = frames //
    160; s2s = 1e-4 per candidate frame + 1e-5 per context frame, ntok = frames // 160."""
    model_id = "tiny-bigram-test-1"

    def __init__(self):
        self.ids = {p: i for i, p in enumerate(VOCAB)}
        self.maxlen = max(len(p) for p in VOCAB)

    def tokenize(self, text):
        out, i = [], 0
        while i < len(text):
            for n in range(min(self.maxlen, len(text) - i), 0, -1):
                if text[i:i + n] in self.ids:
                    out.append(self.ids[text[i:i + n]])
                    i += n
                    break
            else:
                out.append(UNK)
                i += 1
        return out

    def logprobs(self, ctx_ids, cont_ids):
        prev = ctx_ids[-1] if ctx_ids else BOS
        lps = []
        for t in cont_ids:
            lps.append(logp(prev, t))
            prev = t
        return lps

    def score(self, req):
        mode, ctx, cand = req["mode"], req["context"], req["candidate"]
        speech_ctx, speech_cand = mode in ("s2t", "s2s"), mode in ("t2s", "s2s")
        # the protocol: audio on the speech sides only, text always
        if ("audio" in ctx) != speech_ctx or ("audio" in cand) != speech_cand:
            raise ValueError(f"mode {mode}: audio on the wrong side: {sorted(ctx)} {sorted(cand)}")
        if "text" not in ctx or "text" not in cand:
            raise ValueError("no text")
        if mode == "t2t":
            return self.score_text(ctx["text"], cand["text"])
        if mode == "s2t":
            nll, ntok = self.score_text("", cand["text"])
            return nll + 1e-4 * wav_frames(ctx["audio"]), ntok
        cf = wav_frames(cand["audio"])
        if mode == "t2s":
            return 1e-4 * cf + 0.01 * len(ctx["text"]), cf // 160
        return 1e-4 * cf + 1e-5 * wav_frames(ctx["audio"]), cf // 160


# ---- the independent reference ---------------------------------------------------------------
REF_RE = re.compile("|".join(re.escape(p) for p in sorted(VOCAB, key=len, reverse=True)) + "|.",
                    re.S)


def ref_pieces(text):
    """Greedy longest match by a regex alternation (longest alternatives first)."""
    return REF_RE.findall(text)


def ref_id(piece):
    return VOCAB.index(piece) if piece in VOCAB else UNK


def ref_nll(prev_piece, pieces):
    prev = BOS if prev_piece is None else ref_id(prev_piece)
    total = 0.0
    for p in pieces:
        t = ref_id(p)
        total += -math.log(weight(prev, t) / sum(weight(prev, u) for u in range(NTARGET)))
        prev = t
    return total


def ref_t2t(ctx, cand):
    """The harness rule written out again: (nll, ntok)."""
    if not ctx:
        pieces = ref_pieces(cand)
        return ref_nll(None, pieces), len(pieces)
    cont = cand if (ctx[-1].isspace() or cand[:1].isspace()) else " " + cand
    stripped = ctx.rstrip()
    cont = ctx[len(stripped):] + cont
    ctx_p = ref_pieces(stripped)
    whole = ref_pieces(stripped + cont)
    cont_p = whole[len(ctx_p):]
    return ref_nll(ctx_p[-1] if ctx_p else None, cont_p), len(cont_p)


# Boundary cases with the continuation's tokens written by hand: (context, candidate, previous
# token the continuation is conditioned on, continuation tokens).
BOUNDARY = [
    # "ab cd" tokenizes a|b c|d: "b c" crosses the boundary; the context alone is a|b, so the
    # continuation is whole[2:] = [d], conditioned on b (the harness's split)
    ("ab", "cd", "b", ["d"]),
    ("ab ", "cd", "b", ["d"]),  # trailing space of the context moves to the continuation
    ("abe", "cat", "e", ["at"]),  # a|b|e c|at: "e c" crosses; whole[3:] = [at]
    ("I saw the", "cat", " the", [" cat"]),  # I| s|a|w| the| cat: no crossing
    ("the", "cat", "the", [" cat"]),
    ("", "cat", None, ["cat"]),  # empty context: no separator, conditioned on BOS
    ("ab  ", "x", "b", [" ", " ", "x"]),  # two trailing spaces, no separator added
    ("xy", " cat", "y", [" cat"]),  # the candidate brings its own space
    ("zz", "th\u00e9", "z", [" ", "th", "\u00e9"]),  # a character outside the vocabulary: UNK
]


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}", file=sys.stderr)
        sys.exit(1)


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def worker_cmd(src, capacity):
    return [sys.executable, os.path.join(src, "scorer", "s2s_worker.py"), "--model",
            "test_s2s_worker:TinyLM", "--capacity", str(capacity)]


def env_with_path():
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ---- A: the protocol layer over stdin/stdout --------------------------------------------------
def part_a(src):
    # independent check of the hand-written cases against the reference first
    for ctx, cand, prev, pieces in BOUNDARY:
        nll, ntok = ref_t2t(ctx, cand)
        check(ntok == len(pieces) and close(nll, ref_nll(prev, pieces)),
              f"reference rule disagrees with hand-written case {ctx!r}+{cand!r}")
    rnd = random.Random(7)
    alphabet = "abcehst ."
    cases = [(c, d) for c, d, _, _ in BOUNDARY]
    for _ in range(60):
        ctx = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))
        cand = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12)))
        if rnd.random() < 0.5:  # make "b c" / "e c" across the boundary likely
            ctx, cand = ctx + rnd.choice("be"), "c" + cand
        if ctx.strip() == "" and ctx:
            ctx = "a" + ctx
        cases.append((ctx, cand))
    reqs = []
    for i, (ctx, cand) in enumerate(cases):
        reqs.append({"id": 1000 + i, "item": f"it{i}", "mode": "t2t", "cand": i % 2, "lang": "en",
                     "context": {"text": ctx}, "candidate": {"text": cand}})
    lines = [json.dumps(r) for r in reqs]
    # faults the protocol layer must answer or survive: a speech mode without audio (error reply),
    # a line that is not JSON and a line without an id (no reply: nothing to answer to), empty
    # context and candidate (no tokens to score: error reply)
    lines.insert(5, "this is not json")
    lines.insert(9, json.dumps({"item": "x", "mode": "t2t"}))
    lines.append(json.dumps({"id": 1, "item": "s", "mode": "s2t", "cand": 0, "lang": "en",
                             "context": {"text": "abc"}, "candidate": {"text": "d"}}))
    lines.append(json.dumps({"id": 2, "item": "e", "mode": "t2t", "cand": 0, "lang": "en",
                             "context": {"text": ""}, "candidate": {"text": ""}}))
    p = subprocess.run(worker_cmd(src, 5), input="\n".join(lines) + "\n", capture_output=True,
                       text=True, env=env_with_path(), timeout=60)
    check(p.returncode == 0, f"worker exit status {p.returncode}: {p.stderr}")
    out = p.stdout.splitlines()
    hello = json.loads(out[0])
    check(hello == {"hello": "s2s-worker", "protocol": 1, "model_id": "tiny-bigram-test-1",
                    "capacity": 5}, f"hello: {out[0]}")
    replies = {}
    for line in out[1:]:
        r = json.loads(line)
        check(r["id"] not in replies, f"id {r['id']} answered twice")
        replies[r["id"]] = r
    check(len(replies) == len(reqs) + 2, f"{len(replies)} replies for {len(reqs) + 2} requests")
    check(p.stderr.count("bad request line") == 2, f"bad lines not reported: {p.stderr!r}")
    check("error" in replies[1] and "audio" in replies[1]["error"], f"s2t reply {replies[1]}")
    check("error" in replies[2], f"empty candidate reply {replies[2]}")
    crossing = 0
    for r in reqs:
        ctx, cand = r["context"]["text"], r["candidate"]["text"]
        got = replies[r["id"]]
        check("error" not in got, f"request {r['id']} failed: {got}")
        nll, ntok = ref_t2t(ctx, cand)
        check(got["ntok"] == ntok and close(got["nll"], nll),
              f"{ctx!r} + {cand!r}: worker nll={got['nll']} ntok={got['ntok']}, "
              f"independent nll={nll} ntok={ntok}")
        # count the cases where a token crosses the boundary (the rule matters there)
        c2 = ctx.rstrip()
        sep = "" if not ctx or ctx[-1].isspace() or cand[:1].isspace() else " "
        whole = ref_pieces(c2 + ctx[len(c2):] + sep + cand)
        if "".join(whole[:len(ref_pieces(c2))]) != c2:
            crossing += 1
    check(crossing >= 5, f"only {crossing} requests have a token across the boundary")
    print(f"A: {len(reqs)} t2t replies equal the independent NLL ({crossing} with a token across "
          "the boundary); error replies and bad lines handled")


# ---- B: through s2s-score --------------------------------------------------------------------
def wav_bytes(nframes, seed):
    rnd = random.Random(seed)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(rnd.randint(-3000, 3000).to_bytes(2, "little", signed=True)
                               for _ in range(nframes)))
    return buf.getvalue()


def part_b(bindir, src, work):
    items, frames = [], {}
    texts = [("ab", ["cd", "cat"]), ("I saw the", ["cat", "the cat"]), ("abe", ["cat", "hat"]),
             ("she sat. the", ["cat sat.", "hat is"]), ("zz ", ["th\u00e9", "th"]),
             ("the cat", ["sat", "ate", "is", "he"])]
    tar_path = os.path.join(work, "items.tar")
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as tf:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
        for i, (ctx, cands) in enumerate(texts):
            iid = f"pw_{i:02d}"
            it = {"id": iid, "task": "cloze" if len(cands) == 2 else "choice", "lang": "en",
                  "category": "tiny", "context": {"text": ctx},
                  "candidates": [{"text": c, "label": int(k == i % len(cands))}
                                 for k, c in enumerate(cands)]}
            items.append(it)
            add(f"{iid}.json", json.dumps(it).encode())
            frames[(iid, "ctx")] = 800 + 137 * i
            add(f"{iid}.ctx.wav", wav_bytes(frames[(iid, "ctx")], i))
            for k in range(len(cands)):
                frames[(iid, k)] = 400 + 61 * i + 333 * k
                add(f"{iid}.c{k}.wav", wav_bytes(frames[(iid, k)], 100 * i + k))
    out = os.path.join(work, "out")
    cmd = " ".join(worker_cmd(src, 3))
    env = env_with_path()
    env["S2S_WORKER_CAPACITY"] = "4"
    p = subprocess.run([os.path.join(bindir, "s2s-score"), "--mode", "t2t,s2t,t2s,s2s",
                        "--bootstrap", "0", "--lm", "worker:" + cmd, "-o", out, tar_path],
                       capture_output=True, text=True, env=env, timeout=120)
    check(p.returncode == 0, f"s2s-score exit {p.returncode}: {p.stderr}")
    report = json.load(open(os.path.join(out, "report.json")))
    check(report["run"]["model_sha256"] == "tiny-bigram-test-1",
          f"model id {report['run']['model_sha256']}")
    by_id = {it["id"]: it for it in items}

    def expect(iid, mode, k):
        it = by_id[iid]
        ctx, cand = it["context"]["text"], it["candidates"][k]["text"]
        if mode == "t2t":
            return ref_t2t(ctx, cand)
        if mode == "s2t":
            nll, ntok = ref_t2t("", cand)
            return nll + 1e-4 * frames[(iid, "ctx")], ntok
        cf = frames[(iid, k)]
        if mode == "t2s":
            return 1e-4 * cf + 0.01 * len(ctx), cf // 160
        return 1e-4 * cf + 1e-5 * frames[(iid, "ctx")], cf // 160

    seen = set()
    for line in open(os.path.join(out, "pairs.jsonl")):
        rec = json.loads(line)
        for side in ("plausible", "implausible"):
            c = rec[side]
            check(not c.get("failed"), f"{rec['item']} {rec['mode']}: candidate failed: {c}")
            nll, ntok = expect(rec["item"], rec["mode"], c["cand"])
            check(c["ntok"] == ntok and close(c["nll"], nll),
                  f"{rec['item']} {rec['mode']} cand {c['cand']}: scorer has nll={c['nll']} "
                  f"ntok={c['ntok']}, independent nll={nll} ntok={ntok}")
            seen.add((rec["item"], rec["mode"], c["cand"]))
    want = sum(len(it["candidates"]) for it in items) * 4
    check(len(seen) == want, f"{len(seen)} candidates checked, {want} expected")
    for m in ("t2t", "s2t", "t2s", "s2s"):
        check(report["modes"][m]["failed"] == 0, f"mode {m} has failures")
    print(f"B: s2s-score with the Python worker: {want} candidate scores in 4 modes equal the "
          "independent values")


def main():
    bindir, src, work = sys.argv[1:4]
    part_a(src)
    part_b(bindir, src, work)


if __name__ == "__main__":
    main()
