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
  read_shard() from docs/shard-format.md (executed from the doc by
  bench/lib/ftsteps.py, as tests/hf/check_export.py does).
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

The shard reading, batch building (segments, positions, labels, the mask),
the schedule, the LoRA setup and the update are in bench/lib/ftsteps.py,
which bench/gpu/hf_train.py uses too.
"""
import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
import ftsteps  # noqa: E402


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def make_batch(shard, rows, torch):
    """Tokens, position ids, 4D additive mask and labels of the given rows,
    cut to the largest end of a row's last document; the trained-label count
    and B*T."""
    ids, pos, seg, labels, trained, ntok, _ = ftsteps.make_batch(shard, rows)
    T = ids.shape[1]
    allowed = ftsteps.block_causal(torch.from_numpy(seg),
                                   torch.ones(T, T, dtype=torch.bool).tril())
    mask = ftsteps.additive_mask(allowed[:, None], torch.float32)
    return (torch.from_numpy(ids), torch.from_numpy(pos), mask, torch.from_numpy(labels),
            trained, ntok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ftsteps.add_run_args(ap, micro_batch=1, warmup=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--attn", choices=("sdpa", "eager"), default="sdpa")
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.steps <= a.warmup:
        ap.error("--steps must exceed --warmup")

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    shard = ftsteps.load_read_shard()(a.train)
    short = ftsteps.too_few_rows(shard, a.steps, a.micro_batch)
    if short:
        sys.exit(f"torch_train: {short}")

    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32,
                                                 attn_implementation=a.attn)
    model.config.use_cache = False
    if a.method == "lora":
        model = ftsteps.add_lora(model, 8, 16)
    model.train()
    params, trainable, total = ftsteps.trainable_params(model)
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(   # ft-train's factor: its lr at lr 1
        opt, lambda s: ftsteps.ft_lr_at(s, 1.0, 0, a.steps, "cosine"))
    rss_load = rss_mb()
    print(f"torch_train: {a.method}, attn {a.attn}, {a.threads} threads, trainable {trainable} "
          f"of {total} parameters; RSS after load {rss_load:.0f} MB", file=sys.stderr)

    times, tokens, losses = [], [], []
    for s in range(a.steps):
        t0 = time.perf_counter()
        ids, pos, mask, labels, trained, ntok = make_batch(
            shard, ftsteps.step_rows(s, a.micro_batch), torch)
        logits = model(input_ids=ids, position_ids=pos, attention_mask=mask,
                       use_cache=False).logits
        loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                   labels[:, 1:].reshape(-1), ignore_index=-100,
                                   reduction="sum")
        loss, gnorm = ftsteps.update(loss_sum, trained, params, opt, sched)
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
