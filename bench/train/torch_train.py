#!/usr/bin/env python3
"""The PyTorch side of bench/train/run: the training steps `ft-train train`
runs, done by Hugging Face transformers (and peft for LoRA) on PyTorch, on
the CPU, timed the way bench/train/run times ft-train.

    torch_train.py --model BASE --train SHARD --method lora|full
                   --micro-batch B --steps N [--warmup W] [--threads T]
                   [--lr LR] [--attn sdpa|eager] [--json FILE]

What it computes, step by step, and why that is the same work as
`ft-train train --model BASE --train SHARD --method M --micro-batch B
--grad-accum 1 --max-steps N --threads T --lora-dropout 0 --shuffle false`:

- Model: BASE loaded with AutoModelForCausalLM.from_pretrained in float32
  (ft-train computes in float32), in train mode. Attention is `--attn`:
  "sdpa" (torch.nn.functional.scaled_dot_product_attention) or "eager"
  (matmul + softmax); bench/train/run times both on the first
  configuration and uses the faster one throughout.
- LoRA (--method lora): peft LoraConfig(r=8, lora_alpha=16,
  lora_dropout=0, target_modules=all 7 projections q,k,v,o,gate,up,down,
  bias="none"): ft-train's default recipe (lora_rank 8, lora_alpha 16,
  lora_targets all) with lora_dropout 0 on both sides. Only the adapters
  train; the base weights and embeddings are frozen. Full (--method full):
  every parameter trains. The trainable parameter count is printed so it
  can be checked against the count ft-train prints.
- Rows: step s (0-based) takes rows s*B .. s*B+B-1 of SHARD, in order
  (ft-train with --shuffle false and grad_accum 1 does the same), read with
  read_shard() from docs/shard-format.md (executed from the doc, as
  tests/hf/check_export.py does).
- Length: the batch is cut to T = the largest end of a row's last document
  in the batch, as ft-train's batch builder does (trainer/data.c). The
  positions computed per step, B x T, are the "tokens" ft-train writes to
  metrics.jsonl; tokens/s is computed from them on both sides.
- Packing: a row holds several documents. Each document, and each run of
  padding, is its own segment: position ids restart at 0 at each segment's
  start, and a 4D float attention mask [B, 1, T, T] (0 where allowed, the
  float minimum elsewhere) lets position p attend to positions q <= p of
  its own segment only: block-diagonal causal attention, what ft-train
  computes. HF computes attention over the whole T x T and masks it
  (ft-train may skip the masked blocks: that is part of what is compared).
- Loss: labels = the row's tokens, -100 where the shard's loss mask is 0
  and at every segment's first position (a document's first token has no
  predecessor in its document). Cross-entropy of logits[:, :-1] against
  labels[:, 1:], summed, divided by the step's trained-token count:
  ft-train's mean over trained tokens.
- Update: gradient norm clipped to 1.0 (ft-train's max_grad_norm default),
  then torch.optim.AdamW(lr, betas (0.9, 0.999), eps 1e-8, weight_decay 0)
  with ft-train's schedule (cosine from lr to 0 over N steps, no warmup).
- Threads: torch.set_num_threads(T) (and set_num_interop_threads(1)).

Timing: wall time of each whole step (batch building, forward, backward,
clip, optimizer step) with time.perf_counter(). tok_s is the tokens of
steps W+1..N over their summed time, the first W steps (warm-up: first-touch
allocation, oneDNN/kernel selection) left out; bench/train/run takes
ft-train's rate over the same steps from elapsed_s in metrics.jsonl.
Loading the model is not timed. Peak RSS is measured around the whole
process by bench/train/run (GNU time); the RSS after loading the model and
before the first step (ru_maxrss) is reported here for context.

Output: a line per step on stderr, and with --json a summary: tok_s, step
seconds, losses of the first and last steps, trainable parameters,
rss_load_mb.
"""
import argparse
import json
import math
import os
import re
import resource
import sys
import time


def load_read_shard():
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                       "shard-format.md")
    code = re.search(r"```python\n(.*?)```", open(doc, encoding="utf-8").read(), re.S).group(1)
    ns = {}
    exec(code.split("\ns = read_shard(")[0], ns)
    return ns["read_shard"]


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def make_batch(shard, rows, np, torch):
    """Tokens, position ids, 4D mask and labels of the given rows, cut to
    the largest end of a row's last document."""
    ends = []
    for r in rows:
        a, b = int(shard["rows"][r]), int(shard["rows"][r + 1])
        ends.append(int(shard["docs"][b - 1]["start"]) + int(shard["docs"][b - 1]["len"])
                    if b > a else 0)
    T = max(1, max(ends))
    B = len(rows)
    ids = np.zeros((B, T), dtype=np.int64)
    pos = np.zeros((B, T), dtype=np.int64)
    seg = np.zeros((B, T), dtype=np.int64)
    labels = np.full((B, T), -100, dtype=np.int64)
    for i, r in enumerate(rows):
        a, b = int(shard["rows"][r]), int(shard["rows"][r + 1])
        starts = []
        at = 0
        for d in shard["docs"][a:b]:
            s, n = int(d["start"]), int(d["len"])
            if s > at:
                starts.append(at)          # padding before it
            starts.append(s)
            at = s + n
        if at < T or not starts:
            starts.append(at)              # padding after them
        ids[i] = shard["tokens"][r, :T]
        keep = shard["mask"][r, :T].astype(bool)
        bounds = starts + [T]
        for k in range(len(starts)):
            s, e = bounds[k], bounds[k + 1]
            if e <= s:
                continue
            pos[i, s:e] = np.arange(e - s)
            seg[i, s:e] = k
            keep[s] = False                # a segment's first token is never a target
        labels[i, keep] = ids[i, keep]
    seg_t = torch.from_numpy(seg)
    same = seg_t[:, :, None] == seg_t[:, None, :]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    allowed = same & causal
    mask = torch.zeros(B, 1, T, T, dtype=torch.float32)
    mask.masked_fill_(~allowed[:, None], torch.finfo(torch.float32).min)
    trained = int((labels != -100).sum())
    return (torch.from_numpy(ids), torch.from_numpy(pos), mask, torch.from_numpy(labels),
            trained, B * T)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--method", choices=("lora", "full"), required=True)
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=2, help="steps left out of tok_s")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.steps <= a.warmup:
        ap.error("--steps must exceed --warmup")

    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    read_shard = load_read_shard()
    shard = read_shard(a.train)
    n_rows = len(shard["rows"]) - 1
    if a.steps * a.micro_batch > n_rows:
        sys.exit(f"torch_train: {a.steps} steps of {a.micro_batch} rows need more than "
                 f"the shard's {n_rows} rows")

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32,
                                                 attn_implementation=a.attn)
    model.config.use_cache = False
    if a.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                            "gate_proj", "up_proj", "down_proj"]))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    total = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * s / a.steps)))
    rss_load = rss_mb()
    print(f"torch_train: {a.method}, attn {a.attn}, {a.threads} threads, trainable {trainable} "
          f"of {total} parameters; RSS after load {rss_load:.0f} MB", file=sys.stderr)

    times, tokens, losses = [], [], []
    for s in range(a.steps):
        t0 = time.perf_counter()
        rows = list(range(s * a.micro_batch, (s + 1) * a.micro_batch))
        ids, pos, mask, labels, trained, ntok = make_batch(shard, rows, np, torch)
        logits = model(input_ids=ids, position_ids=pos, attention_mask=mask,
                       use_cache=False).logits
        loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1), ignore_index=-100,
                                   reduction="sum")
        loss = loss_sum / max(trained, 1)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        del logits, loss_sum
        times.append(dt)
        tokens.append(ntok)
        losses.append(loss.item())
        print(f"step {s + 1}/{a.steps} | loss {losses[-1]:.4f} | grad norm {gnorm.item():.3f} "
              f"| {ntok} tokens | {dt:.3f} s | {ntok / dt:.0f} tok/s", file=sys.stderr)

    timed = slice(a.warmup, a.steps)
    tok_s = sum(tokens[timed]) / sum(times[timed])
    out = dict(method=a.method, attn=a.attn, threads=a.threads, micro_batch=a.micro_batch,
               steps=a.steps, warmup=a.warmup, tok_s=tok_s, step_s=times, tokens=tokens,
               loss_first=losses[0], loss_last=losses[-1], trainable=trainable, total=total,
               rss_load_mb=rss_load, torch=torch.__version__)
    print(f"torch_train: {tok_s:.1f} tok/s over steps {a.warmup + 1}..{a.steps}",
          file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
