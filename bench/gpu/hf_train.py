#!/usr/bin/env python3
"""The Hugging Face side of bench/gpu/run: the training steps `ft-train train
--device cuda` runs, done by transformers (and peft for LoRA) on PyTorch on
the same GPU, timed the way bench/gpu/run times ft-train; plus the helpers
the run script needs (FLOP counts, the matmul peak, ft-train's summary, the
report), so that one file holds every formula of the report.

What it shares with bench/train/torch_train.py (shard reading, batch
building, masks, the learning-rate schedule, the LoRA setup, the update) is
in bench/lib/ftsteps.py.

    hf_train.py train --model BASE --train SHARD --method lora|full
                      --micro-batch B --steps N [--warmup W] [--device cuda]
                      [--lr LR] [--lr-scheduler cosine] [--lr-warmup 0]
                      [--lora-rank 16] [--lora-alpha 32] [--init-adapter FILE]
                      [--attn sdpa] [--mask auto|posids|4d]
                      [--compile auto|1|0] [--peak-tflops P] [--json FILE]
    hf_train.py peak [--device cuda] [--n 8192] [--reps 20]
    hf_train.py ft-summary --run RUNDIR --log LOG --model BASE --train SHARD ...
    hf_train.py report --dir OUTDIR --configs "..." --methods "..."

What `train` computes, step by step, and why it is the same work as
`ft-train train --model BASE --train SHARD --device cuda --method M
--micro-batch B --grad-accum 1 --max-steps N --lora-rank 16 --lora-alpha 32
--lora-dropout 0 --lora-targets all --lr LR --shuffle false --seed 42`:

- Model: BASE (a directory `ft-train init` wrote) loaded with
  AutoModelForCausalLM.from_pretrained(attn_implementation=--attn, default
  "sdpa"), moved to the GPU, train mode, use_cache off.
- Precision, chosen to match ft-train's CUDA path (docs/cuda.md: bf16
  storage for what the forward reads, fp32 master weights, gradients and
  AdamW moments, fp32 arithmetic inside the GEMMs):
  * LoRA: the frozen base in bf16 (dtype=torch.bfloat16); peft's adapters in
    fp32 (get_peft_model's autocast_adapter_dtype=True, its default, keeps
    them fp32 on a bf16 base); forward and backward under
    torch.autocast("cuda", bfloat16), so the adapter matmuls read bf16 copies
    of the fp32 adapters, as ft-train does. Gradients and AdamW of the
    adapters in fp32.
  * Full: the whole model in fp32 (the master weights) under
    torch.autocast(bfloat16): bf16 GEMMs, fp32 weights, gradients and AdamW
    moments, as ft-train (18 bytes/parameter there, 16 + autocast's
    transient bf16 weight copies here). A pure-bf16 model with AdamW would
    update bf16 weights (lr 2e-4 steps vanish in bf16 rounding): neither fair
    nor what ft-train computes, so it is not used.
  * --device cpu (the local smoke test only): everything fp32, no autocast
    (--precision bf16 takes the GPU's path on the CPU, to test it).
- LoRA (--method lora): peft LoraConfig(r=16, lora_alpha=32, lora_dropout=0,
  bias="none", target_modules q,k,v,o,gate,up,down). Only the adapters train.
  With --init-adapter FILE (an adapter_model.safetensors ft-train exported
  from a 1-step run at lr 0 with the same seed: its initial A, and B = 0),
  the peft lora_A/lora_B weights are set to those values, so both sides start
  from identical adapters; without it peft draws its own A (B = 0 on both
  sides, so the step-1 loss is the same anyway). Full (--method full): every
  parameter trains.
- Rows: step s (0-based) takes rows s*B .. s*B+B-1 of SHARD in order
  (ft-train with --shuffle false, grad_accum 1), read with read_shard() from
  docs/shard-format.md (executed from the doc by bench/lib/ftsteps.py, which
  holds the shard reading, batch building, masks and schedule that this file
  and bench/train/torch_train.py share).
- Length: the batch is cut to T = the largest end of a row's last document
  in the batch (trainer/data.c). B x T positions are the "tokens" ft-train
  writes to metrics.jsonl; both rates count them.
- Packing: every document and every run of padding of a row is a segment;
  position ids restart at 0 at each segment start. Documents must attend only
  to themselves (block-diagonal causal attention, what ft-train computes).
  --mask posids passes only position_ids (no attention mask):
  transformers 5 (masking_utils.find_packed_sequence_indices) then detects
  the restarts and builds the block-diagonal causal mask itself for
  sdpa/eager/flex ("padding-free" packing; flash_attention_2 uses varlen).
  --mask 4d builds a boolean [B, 1, T, T] mask (True = may attend: same
  segment and key <= query; an additive mask in the compute dtype for
  eager), which transformers hands to the attention unchanged. --mask auto
  (default) runs one no-grad forward, in posids mode, of the first step's
  batch whose rows hold more than one segment, captures the attention_mask
  the first attention layer actually receives, and uses posids only when
  that mask is exactly the block-diagonal causal one (None is accepted only
  when every row is one segment); otherwise it falls back to 4d and says
  why. transformers looks for restarting positions only without a KV cache:
  the forward passes use_cache=False (with a cache the same call silently
  attends across documents). Either way sdpa computes every T x T block and
  masks (ft-train skips masked tiles: part of what is compared).
- Loss: labels are the row's tokens, -100 where the shard's mask is 0 and at
  every segment's first position. Cross-entropy (fp32 logits, as
  transformers' own loss upcasts) of the logits at p against the label at
  p+1, summed, divided by the step's trained-label count: ft-train's mean
  over trained tokens.
- Update: clip_grad_norm_(1.0); torch.optim.AdamW(lr, (0.9, 0.999), 1e-8,
  weight_decay 0, fused on CUDA); the learning rate of step s is ft-train's
  ft_lr_at(s) (trainer/optim.c: linear warmup over --lr-warmup steps, then
  cosine/linear/constant to 0 over the remaining steps).
- torch.compile (--compile): "auto" compiles each decoder layer
  (module.compile(dynamic=True): regional compilation, one graph shared by
  all layers, so compiling takes seconds rather than minutes and the varying
  T does not recompile); if compiling or running the compiled step fails
  (no C compiler or Python headers for Triton, an inductor error), the step
  is redone eagerly (gradients zeroed first; nothing was updated) with a
  note on stderr and in the JSON. "1": compile, fail if it fails; "0": eager.
  Recompilations during the timed steps are counted and reported.

Timing: torch.cuda.synchronize() before and after each step; the wall time
of the whole step (batch building, host-to-device copies, forward, loss,
backward, clipping, AdamW, reading the loss and the norm back) with
time.perf_counter(). tok_s = the tokens of steps W+1..N over their summed
time (the first W steps, where compilation, cuBLAS/cuDNN heuristics and the
caching allocator warm up, are left out); bench/gpu/run takes ft-train's
rate over the same steps from elapsed_s in metrics.jsonl. Memory:
torch.cuda.max_memory_allocated and max_memory_reserved at the end (the run
script also samples nvidia-smi around both sides, the number it compares).

FLOPs (model FLOPs: what the method needs, no recomputation, no masked
attention blocks), per step, with t = B x T tokens computed, L layers,
hidden H, intermediate I, heads nh, kv heads kv, head size hd, vocabulary V,
LoRA rank r, and P = sum over the documents d in the step's rows of
len_d (len_d + 1) / 2 (causal pairs within documents; padding not counted):

    N_layer = H*nh*hd (q) + 2*H*kv*hd (k, v) + nh*hd*H (o) + 3*H*I (gate, up, down)
    N_head  = V*H                        (the LM head matmul, tied or not)
    attn    = 12 * L * nh*hd * P         (QK^T and PV: 2*nh*hd FLOPs per pair
                                          each forward; the backward twice that)
    full:  F = 6 * (L*N_layer + N_head) * t + attn
    lora:  F = 4 * (L*N_layer + N_head) * t           (frozen: forward 2N and the
                                                       input-gradient 2N, no weight gradient)
             - 2 * H*(nh*hd + 2*kv*hd) * t            (layer 0's q/k/v input gradient
                                                       is not needed: embeddings frozen)
             + 6 * L * N_lora_layer * t - 2*3*r*H * t (adapters: forward 2, backward 4 per
                                                       parameter; layer 0's q/k/v A input
                                                       gradient not needed)
             + attn
    N_lora_layer = r * (sum over the 7 projections of in + out)

Embedding lookups, norms, RoPE, SwiGLU, biases, softmax and the loss are
not counted (elementwise). MFU = F(steps W+1..N) / their time / peak, the
peak given by --peak-tflops (bench/gpu/run: PEAK_TFLOPS or `peak`: the median
of 20 timed 8192^3 bf16 torch.matmul on random data after 5 warm-ups).

Output: a line per step on stderr; with --json a summary (status ok, or
failed with the reason, e.g. CUDA out of memory at step k): tok_s, mfu,
per-step seconds, tokens, losses, grad norms, FLOPs, trainable parameters,
memory, the attention/mask/compile decisions, versions.
"""
import argparse
import contextlib
import inspect
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
from ftsteps import (add_lora, add_run_args, additive_mask, block_causal,  # noqa: E402
                     ft_lr_at, load_read_shard, make_batch, step_rows, too_few_rows,
                     trainable_params, update)


def torch_device(name):
    """torch.device of NAME with an index ("cuda" is "cuda:0"): torch.cuda's
    memory and synchronize calls want one"""
    import torch
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", 0)
    return dev

def note(msg):
    print(f"hf_train: {msg}", file=sys.stderr, flush=True)


# ---- steps, FLOPs (no torch needed; batches: bench/lib/ftsteps.py) ----------

def step_shapes(shard, micro_batch, steps):
    """(tokens, pairs, trained) of each step, without building tensors."""
    out = []
    for s in range(steps):
        _, _, _, _, trained, ntok, pairs = make_batch(shard, step_rows(s, micro_batch))
        out.append((ntok, pairs, trained))
    return out


def model_dims(model_dir):
    c = json.load(open(os.path.join(model_dir, "config.json")))
    H, nh = c["hidden_size"], c["num_attention_heads"]
    return dict(L=c["num_hidden_layers"], H=H, I=c["intermediate_size"], nh=nh,
                kv=c.get("num_key_value_heads") or nh, hd=c.get("head_dim") or H // nh,
                V=c["vocab_size"], tied=bool(c.get("tie_word_embeddings", False)),
                arch=(c.get("architectures") or ["?"])[0])


def flop_terms(d, rank):
    L, H, I, nh, kv, hd, V = d["L"], d["H"], d["I"], d["nh"], d["kv"], d["hd"], d["V"]
    q, k = nh * hd, kv * hd
    n_layer = H * q + 2 * H * k + q * H + 3 * H * I
    n_head = V * H
    lora_layer = rank * ((H + q) + 2 * (H + k) + (q + H) + 2 * (H + I) + (I + H))
    return n_layer, n_head, lora_layer


def step_flops(d, method, rank, tokens, pairs):
    """Model FLOPs of one step (formula in the module docstring)."""
    L, H, nh, kv, hd = d["L"], d["H"], d["nh"], d["kv"], d["hd"]
    n_layer, n_head, lora_layer = flop_terms(d, rank)
    attn = 12 * L * nh * hd * pairs
    if method == "full":
        return 6 * (L * n_layer + n_head) * tokens + attn
    frozen = 4 * (L * n_layer + n_head) - 2 * H * (nh * hd + 2 * kv * hd)
    adapters = 6 * L * lora_layer - 2 * 3 * rank * H
    return (frozen + adapters) * tokens + attn


# ---- peak -------------------------------------------------------------------

def cmd_peak(a):
    import torch
    dev = torch_device(a.device)
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    n = a.n
    x = torch.randn(n, n, device=dev, dtype=dt)
    y = torch.randn(n, n, device=dev, dtype=dt)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()
    for _ in range(5):
        torch.matmul(x, y)
    sync()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        torch.matmul(x, y)
        sync()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    med = ts[len(ts) // 2] if len(ts) % 2 else 0.5 * (ts[len(ts) // 2 - 1] + ts[len(ts) // 2])
    tflops = 2.0 * n ** 3 / med / 1e12
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    note(f"peak: {n}^3 {str(dt).replace('torch.', '')} matmul on {name}: median {med * 1e3:.3f} ms "
         f"of {a.reps} (min {ts[0] * 1e3:.3f}, max {ts[-1] * 1e3:.3f}): {tflops:.1f} TFLOP/s")
    print(f"{tflops:.2f}")


# ---- ft-train summary -------------------------------------------------------

def cmd_ft_summary(a):
    out = dict(side="ft", config=a.config, method=a.method, micro_batch=a.micro_batch,
               steps=a.steps, warmup=a.warmup, status="ok")
    log = open(a.log, errors="replace").read() if os.path.exists(a.log) else ""
    tr = re.search(r"trainable (\d+) of (\d+)", log)
    if tr:
        out["trainable"], out["total"] = int(tr.group(1)), int(tr.group(2))
    mpath = os.path.join(a.run, "metrics.jsonl")
    m = []
    if os.path.exists(mpath):
        m = [json.loads(l) for l in open(mpath) if '"tok_s"' in l]
    out["losses"] = [x["loss"] for x in m]
    out["grad_norms"] = [x["grad_norm"] for x in m]
    out["tokens"] = [x["tokens"] for x in m]
    out["elapsed_s"] = [x["elapsed_s"] for x in m]
    if a.rc != 0 or len(m) < a.steps:
        out["status"] = "failed"
        if a.rc == 124 or a.rc == 137:
            reason = f"timeout after {a.timeout} s ({len(m)} of {a.steps} steps done)"
        else:
            lines = [l.strip() for l in log.splitlines() if l.strip()]
            errs = [l for l in lines if l.startswith("ft-train:") and "warning" not in l]
            reason = (errs[-1] if errs else lines[-1] if lines else "no output")
            reason = f"exit {a.rc}: {reason}" if a.rc else f"{len(m)} of {a.steps} steps: {reason}"
        out["reason"] = reason[:200]
    else:
        w = a.warmup
        d = model_dims(a.model)
        shard = load_read_shard()(a.train)
        shapes = step_shapes(shard, a.micro_batch, a.steps)
        flops = [step_flops(d, a.method, a.lora_rank, t, p) for t, p, _ in shapes]
        t_timed = m[-1]["elapsed_s"] - m[w - 1]["elapsed_s"]
        tok = sum(x["tokens"] for x in m[w:])
        out.update(tok_s=tok / t_timed, time_timed=t_timed, tokens_timed=tok,
                   flops_timed=sum(flops[w:]), flops=flops,
                   tokens_match=[x["tokens"] for x in m] == [t for t, _, _ in shapes],
                   trained_match=[x["trained_tokens"] for x in m] == [c for _, _, c in shapes])
        if a.peak_tflops > 0:
            out["mfu"] = out["flops_timed"] / t_timed / (a.peak_tflops * 1e12)
        out["step_s"] = [m[0]["elapsed_s"]] + [m[i]["elapsed_s"] - m[i - 1]["elapsed_s"]
                                               for i in range(1, len(m))]
    add_memory(out, a.mem, a.mem_base, a.rss)
    json.dump(out, open(a.json, "w"))


def add_memory(out, mem, base, rss):
    """Peak device memory from nvidia-smi samples (MiB) minus the idle
    baseline, or peak RSS (KiB, GNU time) on the CPU."""
    if mem and os.path.exists(mem):
        vals = [float(x) for x in open(mem).read().split() if re.fullmatch(r"[0-9.]+", x)]
        if vals:
            out["mem_gib"] = (max(vals) - (base or 0.0)) / 1024.0
            out["mem_how"] = "nvidia-smi"
            out["mem_samples"] = len(vals)
    elif rss and os.path.exists(rss):
        vals = [float(x) for x in open(rss).read().split() if re.fullmatch(r"[0-9]+", x)]
        if vals:
            out["mem_gib"] = vals[-1] / 1048576.0
            out["mem_how"] = "peak RSS"


def cmd_hf_summary(a):
    """Complete the JSON `train` wrote (memory sampled around the process),
    or write a failure from the log when it wrote none; print ok, oom,
    timeout or failed."""
    out = None
    if a.json and os.path.exists(a.json):
        try:
            out = json.load(open(a.json))
        except ValueError:
            out = None
    if out is None:
        out = dict(side="hf", config=a.config, method=a.method, micro_batch=a.micro_batch,
                   steps=a.steps, warmup=a.warmup, status="failed")
    if a.rc != 0 and out.get("status") == "ok":
        out["status"] = "failed"
    if out.get("status") != "ok" and not out.get("reason"):
        if a.rc in (124, 137):
            out["reason"] = f"timeout after {a.timeout} s"
            out["timeout"] = True
        else:
            log = open(a.log, errors="replace").read() if os.path.exists(a.log) else ""
            lines = [l.strip() for l in log.splitlines() if l.strip()]
            out["reason"] = f"exit {a.rc}: {lines[-1] if lines else 'no output'}"[:200]
            out["oom"] = "out of memory" in log.lower()
    if a.note:
        out["compile"] = f"{out.get('compile', '-')} ({a.note})"
    add_memory(out, a.mem, a.mem_base, a.rss)
    json.dump(out, open(a.json, "w"))
    print("ok" if out["status"] == "ok" else "oom" if out.get("oom") else
          "timeout" if out.get("timeout") else "failed")


# ---- train ------------------------------------------------------------------

def cmd_train(a):
    out = dict(side="hf", config=a.config, method=a.method, micro_batch=a.micro_batch,
               steps=a.steps, warmup=a.warmup, status="ok", attn=a.attn)
    try:
        train(a, out)
    except Exception as e:   # the summary still says what happened
        import traceback
        traceback.print_exc()
        out["status"] = "failed"
        oom = type(e).__name__ in ("OutOfMemoryError",) or "out of memory" in str(e)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if oom:
            msg = "CUDA out of memory" + (f" at step {out['failed_step']}"
                                          if "failed_step" in out else " before step 1")
        out["reason"] = (msg if oom else f"{type(e).__name__}: {msg}")[:200]
        out["oom"] = oom
        finish(a, out)
        sys.exit(3)
    finish(a, out)


def finish(a, out):
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)


def check_packing(model, batch, torch):
    """Run batch 0 through the model without a mask and look at the mask the
    first attention layer receives. Returns (ok, why)."""
    ids, pos, seg = batch
    attn_mod = next((m for m in model.modules()
                     if type(m).__name__.endswith("Attention") and hasattr(m, "q_proj")), None)
    if attn_mod is None:
        return False, "no attention module found to inspect"
    seen = {}

    def hook(mod, args, kwargs):
        if "mask" not in seen:
            try:
                bound = inspect.signature(mod.forward).bind_partial(*args, **kwargs).arguments
            except TypeError:
                bound = kwargs
            seen["mask"] = bound.get("attention_mask")
    h = attn_mod.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=ids, position_ids=pos, use_cache=False)
    finally:
        h.remove()
    m = seen.get("mask")
    B, T = ids.shape
    segc = seg.cpu()
    want = block_causal(segc, torch.ones(T, T, dtype=torch.bool).tril())
    single = bool((segc == segc[:, :1]).all())
    if m is None:
        return (single, "transformers passed no mask (plain causal)" +
                (": every row is one segment, nothing to keep apart" if single else
                 ": the documents of a row would see each other"))
    if not isinstance(m, torch.Tensor):
        return True, (f"transformers passed a {type(m).__name__} (built from the position ids "
                      f"by masking_utils; not compared element by element)")
    mm = m.detach().cpu()
    got = mm if mm.dtype == torch.bool else mm > torch.finfo(mm.dtype).min / 2
    try:
        got = got.expand(B, 1, T, T)[:, 0]
    except RuntimeError:
        return False, f"mask of unexpected shape {tuple(m.shape)}"
    if torch.equal(got, want):
        return True, ("transformers built the block-diagonal causal mask from the restarting "
                      "position ids (checked on batch 0)")
    return False, (f"the mask transformers built from the position ids differs from the "
                   f"block-diagonal causal one in {int((got != want).sum())} places")


def train(a, out):
    import numpy as np
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import AutoModelForCausalLM

    dev = torch_device(a.device)
    cuda = dev.type == "cuda"
    out["versions"] = dict(torch=torch.__version__, transformers=transformers.__version__,
                           python=sys.version.split()[0])
    if cuda:
        torch.cuda.set_device(dev)
        out["gpu"] = torch.cuda.get_device_name(dev)
    shard = load_read_shard()(a.train)
    short = too_few_rows(shard, a.steps, a.micro_batch)
    if short:
        raise RuntimeError(short)
    d = model_dims(a.model)

    lora = a.method == "lora"
    bf16 = a.precision == "bf16" or (a.precision == "auto" and cuda)
    wdtype = torch.bfloat16 if (bf16 and lora) else torch.float32
    autocast = bf16
    out["precision"] = ("bf16 base, fp32 adapters, autocast bf16" if bf16 and lora else
                        "fp32 weights, autocast bf16" if bf16 else "fp32 (test path)")
    t_load = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=wdtype,
                                                 attn_implementation=a.attn)
    model.config.use_cache = False
    model.to(dev)
    if lora:
        import peft
        out["versions"]["peft"] = peft.__version__
        torch.manual_seed(42)
        model = add_lora(model, a.lora_rank, a.lora_alpha)
        out["adapter_init"] = "peft's own (kaiming-uniform A from torch's RNG, B = 0)"
        if a.init_adapter:
            out["adapter_init"] = load_adapter(model, a.init_adapter, torch)
    model.train()
    params, trainable, total = trainable_params(model)
    out.update(trainable=trainable, total=total)
    out["trainable_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in params})
    # the matmul parameters the FLOP count assumes, against the model's Linears
    n_layer, n_head, lora_layer = flop_terms(d, a.lora_rank)
    lin = sum(m.weight.numel() for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and "lora_" not in n)
    out["flop_params_check"] = dict(model_linear=lin, formula=d["L"] * n_layer + n_head)
    if lin != d["L"] * n_layer + n_head:
        note(f"warning: the model's Linear weights ({lin}) differ from the FLOP formula's "
             f"({d['L'] * n_layer + n_head})")
    if lora and trainable != d["L"] * lora_layer:
        note(f"warning: {trainable} trainable LoRA parameters, the formula says "
             f"{d['L'] * lora_layer}")
    fused = {"fused": True} if cuda else {}
    try:
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.0, **fused)
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    out["optimizer"] = "AdamW fused" if opt.defaults.get("fused") else "AdamW"
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: ft_lr_at(s, a.lr, a.lr_warmup, a.steps, a.lr_scheduler) / a.lr
        if a.lr > 0 else 0.0)
    out["load_s"] = time.perf_counter() - t_load
    note(f"{a.method} {a.config}: {out['precision']}, attn {a.attn}, trainable {trainable} of "
         f"{total} parameters ({', '.join(out['trainable_dtypes'])}), loaded in "
         f"{out['load_s']:.1f} s")

    def to_dev(x):
        t = torch.from_numpy(x)
        return t.pin_memory().to(dev, non_blocking=True) if cuda else t

    def batch(s):
        ids, pos, seg, labels, trained, ntok, pairs = make_batch(shard,
                                                                 step_rows(s, a.micro_batch))
        tgt = np.full_like(labels, -100)
        tgt[:, :-1] = labels[:, 1:]        # the target of position p is the label at p + 1
        return to_dev(ids), to_dev(pos), to_dev(seg), to_dev(tgt), trained, ntok, pairs

    def ac():
        return torch.autocast(dev.type, dtype=torch.bfloat16) if autocast else \
            contextlib.nullcontext()

    # packing: does transformers keep documents apart from position ids alone?
    mask_mode = a.mask
    b0 = batch(0)
    if a.attn in ("flash_attention_2", "flash_attention_3") and mask_mode != "4d":
        mask_mode, why = "posids", "flash attention: varlen from the position ids"
    elif mask_mode in ("auto", "posids"):
        # the first step whose rows hold several segments (documents, padding)
        probe = next((s for s in range(a.steps)
                      if make_batch(shard, step_rows(s, a.micro_batch))[2].max() > 0), 0)
        bp = b0 if probe == 0 else batch(probe)
        with ac():
            ok, why = check_packing(model, bp[:3], torch)
        why = why.replace("batch 0", f"the batch of step {probe + 1}")
        note(f"packing check: {why}")
        if mask_mode == "auto":
            mask_mode = "posids" if ok else "4d"
        elif not ok:
            note("warning: --mask posids although the check failed")
    else:
        why = "set to 4d"
    out["mask"] = mask_mode
    out["mask_check"] = why
    tril_cache = {}

    def mask4d(seg, T):
        if mask_mode != "4d":
            return None
        if T not in tril_cache:
            tril_cache[T] = torch.ones(T, T, dtype=torch.bool, device=dev).tril()
        allowed = block_causal(seg, tril_cache[T])[:, None]
        if a.attn == "sdpa":
            return allowed
        return additive_mask(allowed, torch.bfloat16 if autocast else torch.float32)

    # torch.compile, per decoder layer
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    compiled = False
    out["compile"] = "off"
    if a.compile != "0":
        try:
            import torch._dynamo as dynamo
            for k in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                      "accumulated_recompile_limit"):
                if hasattr(dynamo.config, k):
                    setattr(dynamo.config, k, max(getattr(dynamo.config, k), 256))
            for m in layers:
                m.compile(dynamic=True)
            compiled = True
            out["compile"] = f"regional: {len(layers)} decoder layers, dynamic=True"
        except Exception as e:
            if a.compile == "1":
                raise
            out["compile"] = f"failed, eager: {type(e).__name__}: {str(e)[:120]}"
            note(f"torch.compile failed ({e}); running eagerly")

    def uncompile():
        for m in layers:
            m._compiled_call_impl = None
        try:
            torch._dynamo.reset()
        except Exception:
            pass

    def graphs():
        try:
            from torch._dynamo.utils import counters
            return int(counters["stats"]["unique_graphs"])
        except Exception:
            return 0

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step(s, pre=None):
        ids, pos, seg, tgt, trained, ntok, pairs = pre if pre is not None else batch(s)
        T = ids.shape[1]
        with ac():
            logits = model(input_ids=ids, position_ids=pos, attention_mask=mask4d(seg, T),
                           use_cache=False).logits
        loss_sum = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1),
                                   ignore_index=-100, reduction="sum")
        del logits
        loss, gnorm = update(loss_sum, trained, params, opt, sched)
        return loss.item(), gnorm.item(), ntok, pairs, trained

    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times, tokens, losses, norms, flops = [], [], [], [], []
    recompiles = None
    for s in range(a.steps):
        if s == a.warmup:
            g0 = graphs()
        out["failed_step"] = s + 1
        sync()
        t0 = time.perf_counter()
        try:
            r = step(s, b0 if s == 0 else None)
        except Exception as e:
            if not compiled or a.compile == "1" or "out of memory" in str(e):
                raise
            note(f"the compiled step {s + 1} failed ({type(e).__name__}: "
                 f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}); "
                 f"redoing it eagerly")
            out["compile"] = f"failed at step {s + 1}, eager: {type(e).__name__}"
            compiled = False
            uncompile()
            opt.zero_grad(set_to_none=True)
            sync()
            t0 = time.perf_counter()
            r = step(s, b0 if s == 0 else None)
        sync()
        dt = time.perf_counter() - t0
        loss, gnorm, ntok, pairs, trained = r
        f = step_flops(d, a.method, a.lora_rank, ntok, pairs)
        times.append(dt)
        tokens.append(ntok)
        losses.append(loss)
        norms.append(gnorm)
        flops.append(f)
        print(f"step {s + 1}/{a.steps} | loss {loss:.4f} | grad norm {gnorm:.3f} | lr "
              f"{ft_lr_at(s, a.lr, a.lr_warmup, a.steps, a.lr_scheduler):.3g} | {ntok} tokens | "
              f"{dt:.3f} s | {ntok / dt:.0f} tok/s", file=sys.stderr, flush=True)
    out.pop("failed_step", None)
    if compiled:
        g1 = graphs()
        recompiles = g1 - g0
        out["graphs_compiled_in_timed_steps"] = recompiles
    w = a.warmup
    t_timed = sum(times[w:])
    out.update(tok_s=sum(tokens[w:]) / t_timed, time_timed=t_timed, tokens_timed=sum(tokens[w:]),
               flops_timed=sum(flops[w:]), flops=flops, step_s=times, tokens=tokens,
               losses=losses, grad_norms=norms)
    if a.peak_tflops > 0:
        out["mfu"] = out["flops_timed"] / t_timed / (a.peak_tflops * 1e12)
    if cuda:
        out["torch_max_allocated_gib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
        out["torch_max_reserved_gib"] = torch.cuda.max_memory_reserved(dev) / 2 ** 30
    note(f"{out['tok_s']:.1f} tok/s over steps {w + 1}..{a.steps}" +
         (f", MFU {100 * out['mfu']:.1f}%" if "mfu" in out else "") +
         (f", torch max allocated {out['torch_max_allocated_gib']:.2f} GiB, reserved "
          f"{out['torch_max_reserved_gib']:.2f} GiB" if cuda else "") +
         (f"; {recompiles} graphs compiled during the timed steps" if recompiles else ""))


def load_adapter(model, path, torch):
    """Set peft's lora_A/lora_B weights to ft-train's exported values
    (PEFT names without the adapter name: ...q_proj.lora_A.weight)."""
    from safetensors.torch import load_file
    saved = load_file(path)
    mine = {n.replace(".default.weight", ".weight"): p for n, p in model.named_parameters()
            if ".lora_A." in n or ".lora_B." in n}
    missing = sorted(set(mine) - set(saved))
    extra = sorted(set(saved) - set(mine))
    if missing or extra:
        raise RuntimeError(f"{path}: adapter names differ from peft's: missing "
                           f"{missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for n, p in mine.items():
            t = saved[n]
            if tuple(t.shape) != tuple(p.shape):
                raise RuntimeError(f"{path}: {n} is {tuple(t.shape)}, peft has {tuple(p.shape)}")
            p.copy_(t.to(p.dtype))
    b_zero = all(float(saved[n].abs().max()) == 0.0 for n in saved if ".lora_B." in n)
    return (f"ft-train's initial adapter ({len(saved)} tensors from {os.path.basename(path)}; "
            f"B {'all zero' if b_zero else 'NOT zero'})")


# ---- report -----------------------------------------------------------------

def cmd_report(a):
    """Tables from every run's JSON in --dir: per (config, method, side) the
    successful run with the best rate (its peak memory the largest over the
    successful runs), else the last failure."""
    groups = {}
    for name in sorted(os.listdir(a.dir)):
        if not name.endswith(".json"):
            continue
        try:
            j = json.load(open(os.path.join(a.dir, name)))
        except (OSError, ValueError):
            continue
        if isinstance(j, dict) and "side" in j:
            groups.setdefault((j.get("config"), j.get("method"), j["side"]), []).append(j)
    runs = {}
    for k, js in groups.items():
        good = [j for j in js if j.get("status") == "ok" and "tok_s" in j]
        if good:
            best = dict(max(good, key=lambda j: j["tok_s"]))
            mems = [j["mem_gib"] for j in good if "mem_gib" in j]
            if mems:
                best["mem_gib"] = max(mems)
            best["all_tok_s"] = [j["tok_s"] for j in good]
            runs[k] = best
        else:
            runs[k] = js[-1]
    configs, methods = a.configs.split(), a.methods.split()
    pairs = [(c, m) for c in configs for m in methods
             if any((c, m, s) in runs for s in ("ft", "hf"))]

    def ok(j):
        return j is not None and j.get("status") == "ok"

    def reason(j):
        r = str(j.get("reason", "?")).replace("|", "/").replace("`", "'")
        return f"{j.get('status', 'failed')}: {r if len(r) <= 110 else r[:107] + '...'}"

    def num(j, key, fmt, scale=1.0):
        v = j.get(key) if ok(j) else None
        return fmt.format(v * scale) if isinstance(v, (int, float)) else ""

    print("| config | method | side | tokens/s | MFU % | peak memory GiB | ft/hf tokens/s | "
          "ft/hf memory |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for c, m in pairs:
        ft, hf = runs.get((c, m, "ft")), runs.get((c, m, "hf"))
        for side, j in (("ft", ft), ("hf", hf)):
            rt = rm = ""
            if side == "ft" and ok(ft) and ok(hf):
                rt = f"{ft['tok_s'] / hf['tok_s']:.2f}"
                if ft.get("mem_gib") and hf.get("mem_gib"):
                    rm = f"{ft['mem_gib'] / hf['mem_gib']:.2f}"
            rate = "not run" if j is None else num(j, "tok_s", "{:.0f}") if ok(j) else reason(j)
            mfu = num(j, "mfu", "{:.1f}", 100.0)
            mem = num(j, "mem_gib", "{:.2f}")
            print(f"| {c} | {m} | {side} | {rate} | {mfu} | {mem} | {rt} | {rm} |")

    # the losses and checks: the pairs that ran (not only skipped)
    pairs = [(c, m) for c, m in pairs
             if any((runs.get((c, m, s)) or {}).get("status") not in (None, "skipped")
                    for s in ("ft", "hf"))]
    if not pairs:
        return
    print()
    n = a.losses
    print(f"Losses of the first {n} steps (ft / hf):")
    print()
    head = [f"{c} {m}" for c, m in pairs]
    print("| step | " + " | ".join(head) + " |")
    print("|---:|" + "---|" * len(head))
    for s in range(n):
        cells = []
        any_loss = False
        for c, m in pairs:
            vals = []
            for side in ("ft", "hf"):
                ls = (runs.get((c, m, side)) or {}).get("losses") or []
                vals.append(f"{ls[s]:.4f}" if s < len(ls) else "-")
                any_loss |= s < len(ls)
            cells.append(" / ".join(vals))
        if not any_loss:
            break
        print(f"| {s + 1} | " + " | ".join(cells) + " |")

    print()
    print("Checks (same work on both sides):")
    print()
    print("| config | method | trainable ft / hf | timed tokens ft / hf | GFLOP per timed step | "
          "step-1 loss rel. diff | tokens/s of every run ft / hf | HF attention, mask, compile | "
          "HF adapter init | HF torch max allocated / reserved GiB |")
    print("|---|---|---|---|---:|---:|---|---|---|---|")
    for c, m in pairs:
        ft, hf = runs.get((c, m, "ft")) or {}, runs.get((c, m, "hf")) or {}
        tf = ft.get("tokens_timed", "-"), hf.get("tokens_timed", "-")
        fl = ft.get("flops_timed") or hf.get("flops_timed")
        nst = max(1, ft.get("steps", 1) - ft.get("warmup", 0)) if ft else \
            max(1, hf.get("steps", 1) - hf.get("warmup", 0))
        l1 = "-"
        if ft.get("losses") and hf.get("losses"):
            l1 = f"{abs(ft['losses'][0] - hf['losses'][0]) / abs(hf['losses'][0]):.1e}"
        match = ""
        if ft and ft.get("status") == "ok" and not (ft.get("tokens_match") and
                                                    ft.get("trained_match")):
            match = " (ft-train's tokens per step differ from the shard's!)"
        att = ", ".join(str(hf.get(k, "-")) for k in ("attn", "mask", "compile")) if hf else "-"
        if hf.get("graphs_compiled_in_timed_steps"):
            att += f" ({hf['graphs_compiled_in_timed_steps']} graphs compiled in the timed steps!)"
        mem = (f"{hf['torch_max_allocated_gib']:.2f} / {hf['torch_max_reserved_gib']:.2f}"
               if "torch_max_allocated_gib" in hf else "-")
        gf = f"{fl / nst / 1e9:.1f}" if fl else "-"
        init = hf.get("adapter_init", "-") if m == "lora" else "-"
        every = " / ".join(" ".join(f"{v:.0f}" for v in j.get("all_tok_s", [])) or "-"
                           for j in (ft, hf))
        print(f"| {c} | {m} | {ft.get('trainable', '-')} / {hf.get('trainable', '-')} | "
              f"{tf[0]} / {tf[1]}{match} | {gf} | {l1} | {every} | {att} | {init} | {mem} |")
    notes = [(c, m, runs[(c, m, "hf")].get("mask_check")) for c, m in pairs
             if (c, m, "hf") in runs and runs[(c, m, "hf")].get("mask_check")]
    if notes:
        print()
        for c, m, why in notes[:1] + [x for x in notes[1:] if x[2] != notes[0][2]]:
            print(f"- packing check ({c} {m}): {why}")


# ---- command line -----------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        add_run_args(p, micro_batch=4, warmup=5)
        p.add_argument("--lora-rank", type=int, default=16)
        p.add_argument("--peak-tflops", type=float, default=0.0)
        p.add_argument("--config", default="?", help="the configuration's name, for the JSON")
        p.add_argument("--json")
        p.add_argument("--mem", help="nvidia-smi samples (MiB, one a line) to put in the JSON")
        p.add_argument("--mem-base", type=float, default=0.0, help="idle MiB to subtract")
        p.add_argument("--rss", help="GNU time %%M output (KiB) to put in the JSON")

    t = sub.add_parser("train", help="train and time (the HF side)")
    common(t)
    t.add_argument("--device", default="cuda")
    t.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 (as described) on cuda, fp32 on the cpu; bf16 on the cpu "
                        "tests the GPU's precision path")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--lr-scheduler", choices=("cosine", "linear", "constant"), default="cosine")
    t.add_argument("--lr-warmup", type=int, default=0)
    t.add_argument("--lora-alpha", type=float, default=32.0)
    t.add_argument("--init-adapter", help="ft-train's adapter_model.safetensors to start from")
    t.add_argument("--attn", default="sdpa",
                   help="attn_implementation: sdpa, eager, flex_attention, flash_attention_2")
    t.add_argument("--mask", choices=("auto", "posids", "4d"), default="auto")
    t.add_argument("--compile", choices=("auto", "1", "0"), default="auto")
    p = sub.add_parser("peak", help="median TFLOP/s of an n^3 matmul (bf16 on cuda)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--reps", type=int, default=20)
    s = sub.add_parser("ft-summary", help="ft-train's run as JSON, with the same FLOP count")
    common(s)
    s.add_argument("--run", required=True, help="ft-train's run directory")
    s.add_argument("--log", required=True, help="ft-train's stderr")
    s.add_argument("--rc", type=int, default=0, help="ft-train's exit status")
    s.add_argument("--timeout", type=int, default=0)
    h = sub.add_parser("hf-summary", help="complete the JSON of a `train` run")
    common(h)
    h.add_argument("--log", required=True)
    h.add_argument("--rc", type=int, default=0)
    h.add_argument("--timeout", type=int, default=0)
    h.add_argument("--note", default="")
    r = sub.add_parser("report", help="markdown tables from the JSON files of a run")
    r.add_argument("--dir", required=True)
    r.add_argument("--configs", required=True)
    r.add_argument("--methods", default="lora full")
    r.add_argument("--losses", type=int, default=20)
    a = ap.parse_args()
    if hasattr(a, "warmup") and not 1 <= a.warmup < a.steps:
        ap.error("need 1 <= --warmup < --steps")
    {"train": cmd_train, "peak": cmd_peak, "ft-summary": cmd_ft_summary,
     "hf-summary": cmd_hf_summary,
     "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
