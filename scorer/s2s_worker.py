#!/usr/bin/env python3
"""Reference worker for `s2s-score --lm worker:COMMAND` (protocol: docs/worker.md).

The protocol layer below uses only the standard library. A model is any object with

    model_id: str
    score(request: dict) -> (nll: float, ntok: int)

where `request` is the decoded request line: request["context"] / request["candidate"] each hold
"text", and for speech sides "audio" (a WAV/FLAC path the scorer wrote and will delete) and
"units" (space-separated integers). `nll` is the summed negative log-likelihood (natural log) of
the candidate's tokens given the context; `ntok` the number of candidate tokens.

Plugging in your speech LLM: write a class like `HFCausalLM` below (score() gets the audio path
for s2t/s2s; load it with soundfile/torchaudio and feed your model's speech encoder), then run

    s2s-score --mode t2t,s2t --lm 'worker:python3 scorer/s2s_worker.py --model mypkg.mymodule:MyModel' ...

Token boundary rule (as lm-evaluation-harness does for loglikelihood requests, CausalLM below):
tokenize the whole string context + continuation, tokenize the context alone, and score the tokens
of the whole that come after the context's tokens, conditioned on the context's own tokens; if the
context ends in whitespace, that whitespace is moved to the start of the continuation first. This
keeps a BPE merge across the boundary from being charged to the wrong side. Sum the
log-probabilities of those continuation tokens, each conditioned on everything before it, and
return (-sum, count). A text model only needs tokenize() and logprobs(): subclass CausalLM.
"""
import argparse
import importlib
import json
import math
import sys

PROTOCOL = 1


def serve(model, fin=sys.stdin, fout=sys.stdout, capacity=32):
    """Answers request lines until EOF. Errors in one request become an error reply for it."""
    hello = {"hello": "s2s-worker", "protocol": PROTOCOL, "model_id": model.model_id,
             "capacity": capacity}
    fout.write(json.dumps(hello) + "\n")
    fout.flush()
    for line in fin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            rid = req["id"]
        except (ValueError, KeyError, TypeError) as e:
            print(f"s2s_worker: bad request line: {e}", file=sys.stderr)
            continue
        try:
            nll, ntok = model.score(req)
            if not (isinstance(ntok, int) and ntok >= 0) or not math.isfinite(float(nll)):
                raise ValueError(f"model returned nll={nll!r}, ntok={ntok!r}")
            rep = {"id": rid, "nll": float(nll), "ntok": ntok}
        except Exception as e:  # one bad request must not kill the worker
            rep = {"id": rid, "error": f"{type(e).__name__}: {e}"}
        fout.write(json.dumps(rep) + "\n")
        fout.flush()


def split_boundary(context, continuation):
    """lm-evaluation-harness's rule: trailing whitespace of the context goes to the continuation."""
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    return context, continuation


class CausalLM:
    """Base class of a text causal LM model (t2t) that applies the token boundary rule.

    Subclasses define
        model_id: str
        tokenize(text) -> list of token ids (no special tokens)
        logprobs(ctx_ids, cont_ids) -> list of natural-log probabilities, one per continuation
            token: log p(cont_ids[i] | ctx_ids + cont_ids[:i]); with ctx_ids == [] the first
            token is conditioned on the model's start token (BOS / end-of-text).
    A speech model overrides score() for s2t/t2s/s2s and may call score_text() for text sides.
    """
    model_id = ""

    def tokenize(self, text):
        raise NotImplementedError

    def logprobs(self, ctx_ids, cont_ids):
        raise NotImplementedError

    def encode_pair(self, context, candidate):
        """(ctx_ids, cont_ids) as lm-evaluation-harness's _encode_pair: the continuation is
        " " + candidate unless the context is empty or ends in whitespace (or the candidate starts
        with it); trailing whitespace of the context moves to the continuation; the continuation's
        tokens are those of tokenize(context + continuation) after len(tokenize(context)). A
        token merging across the boundary is thereby split as the harness splits it."""
        if context and not context[-1].isspace() and not candidate[:1].isspace():
            candidate = " " + candidate
        ctx, cont = split_boundary(context, candidate)
        if not ctx:
            return [], self.tokenize(cont)
        ctx_ids = self.tokenize(ctx)
        return ctx_ids, self.tokenize(ctx + cont)[len(ctx_ids):]

    def score_text(self, context, candidate):
        ctx_ids, cont_ids = self.encode_pair(context, candidate)
        if not cont_ids:
            raise ValueError("the candidate has no tokens of its own")
        lps = self.logprobs(ctx_ids, cont_ids)
        return -math.fsum(lps), len(cont_ids)

    def score(self, req):
        if req["mode"] != "t2t":
            raise ValueError(f"mode {req['mode']}: this model reads text only; add your speech "
                             "encoder for context.audio / candidate.audio")
        return self.score_text(req["context"]["text"], req["candidate"]["text"])


class HFCausalLM(CausalLM):
    """A Hugging Face causal LM for t2t (text context, text candidate). Needs torch and
    transformers, which this project does not install: it is the template for your model."""

    def __init__(self, name="gpt2", device="cpu"):
        import torch  # noqa: F401  (imported here so the protocol layer needs nothing)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(name)
        self.lm = AutoModelForCausalLM.from_pretrained(name).to(device).eval()
        self.device = device
        self.model_id = f"hf:{name}@{getattr(self.lm.config, '_commit_hash', '') or 'local'}"

    def tokenize(self, text):
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def logprobs(self, ctx_ids, cont_ids):
        torch = self.torch
        if not ctx_ids:  # as the harness: condition on end-of-text
            ctx_ids = [self.tok.eos_token_id]
        with torch.no_grad():
            ids = torch.tensor([ctx_ids + cont_ids], device=self.device)
            logp = torch.log_softmax(self.lm(ids).logits[0, :-1].float(), dim=-1)
            target = ids[0, 1:]
            lp = logp[torch.arange(len(target)), target][len(ctx_ids) - 1:]
        return lp.tolist()


def load_model(spec):
    """MODULE:CLASS[:ARG] (class constructed with the optional string ARG) or hf:NAME."""
    if spec.startswith("hf:"):
        return HFCausalLM(spec[3:])
    parts = spec.split(":")
    if len(parts) < 2:
        raise SystemExit(f"s2s_worker: --model {spec!r}: expected MODULE:CLASS[:ARG] or hf:NAME")
    cls = getattr(importlib.import_module(parts[0]), parts[1])
    return cls(*parts[2:3])


def main(argv=None):
    ap = argparse.ArgumentParser(description="s2s-score worker (docs/worker.md)")
    ap.add_argument("--model", required=True, help="MODULE:CLASS[:ARG] or hf:NAME")
    ap.add_argument("--capacity", type=int, default=32, help="requests in flight at most")
    a = ap.parse_args(argv)
    serve(load_model(a.model), capacity=a.capacity)


if __name__ == "__main__":
    main()
