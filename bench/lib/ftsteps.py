"""ft-train's training steps as the PyTorch benchmarks replay them: the one
copy of what bench/train/torch_train.py (CPU, bench/train/run) and
bench/gpu/hf_train.py (GPU, bench/gpu/run) both need to do the same work as
`ft-train train --shuffle false --grad-accum 1`:

- load_read_shard: read_shard() executed from docs/shard-format.md;
- step_rows, too_few_rows: the shard rows of step s, in order;
- make_batch: ids, position ids, segment ids and labels of packed rows, cut
  to the largest end of a row's last document (trainer/data.c);
- block_causal, additive_mask: the block-diagonal causal attention mask of
  the segments, boolean or additive;
- ft_lr_at: ft-train's learning-rate schedule (trainer/optim.c);
- LORA_TARGETS, add_lora, trainable_params: the LoRA model and what trains;
- update: the step's mean loss, backward, clipping, optimizer and schedule steps;
- add_run_args: the command-line options both scripts take alike.

numpy and torch are imported by the functions that use them, so the scripts'
commands that need neither still run without them.
"""
import math
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def load_read_shard():
    """read_shard() of docs/shard-format.md, executed from the doc (its
    first python block, up to the example that uses it)."""
    doc = os.path.join(ROOT, "docs", "shard-format.md")
    code = re.search(r"```python\n(.*?)```", open(doc, encoding="utf-8").read(), re.S).group(1)
    ns = {}
    exec(code.split("\ns = read_shard(")[0], ns)
    return ns["read_shard"]


def step_rows(step, micro_batch):
    """The shard rows of STEP (0-based): rows step*B .. step*B+B-1, as
    ft-train takes them with --shuffle false and grad_accum 1."""
    return list(range(step * micro_batch, (step + 1) * micro_batch))


def too_few_rows(shard, steps, micro_batch):
    """Why STEPS steps of MICRO_BATCH rows cannot be taken from SHARD, or None."""
    n_rows = len(shard["rows"]) - 1
    if steps * micro_batch > n_rows:
        return (f"{steps} steps of {micro_batch} rows need more than "
                f"the shard's {n_rows} rows")
    return None


def make_batch(shard, rows):
    """ids, position ids, segment ids, labels [B, T] (numpy int64) of the
    given rows cut to the largest end of a row's last document; the
    trained-label count, B*T and the causal pairs within documents.

    Every document and every run of padding of a row is a segment: position
    ids restart at 0 at its start; labels are the tokens, -100 where the
    shard's mask is 0 and at every segment's first position."""
    import numpy as np
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
    pairs = 0
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
            pairs += n * (n + 1) // 2
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
    trained = int((labels != -100).sum())
    return ids, pos, seg, labels, trained, B * T, pairs


def block_causal(seg, tril):
    """Boolean [B, T, T] of segment ids SEG [B, T] (a torch tensor): True
    where query p may attend to key q, same segment and q <= p. TRIL is the
    [T, T] lower-triangular boolean (callers may cache it)."""
    return (seg[:, :, None] == seg[:, None, :]) & tril


def additive_mask(allowed, dtype):
    """The additive form of the boolean mask ALLOWED: 0 where allowed, the
    smallest DTYPE value elsewhere, on ALLOWED's device."""
    import torch
    m = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return m.masked_fill_(~allowed, torch.finfo(dtype).min)


def ft_lr_at(step, lr, warmup, total, sched):
    """trainer/optim.c ft_lr_at with min_lr_ratio 0: linear warmup over
    WARMUP steps, then cosine, linear or constant to 0 at step TOTAL."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if sched == "constant":
        return lr
    span = total - warmup
    progress = min(1.0, (step - warmup) / span) if span > 0 else 0.0
    f = 0.5 * (1.0 + math.cos(math.pi * progress)) if sched == "cosine" else 1.0 - progress
    return lr * f


def add_lora(model, rank, alpha):
    """MODEL with peft LoRA adapters of RANK and ALPHA on LORA_TARGETS,
    dropout 0, no bias: only the adapters train."""
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
        target_modules=LORA_TARGETS))


def trainable_params(model):
    """(the parameters that train, their element count, the model's count)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return params, sum(p.numel() for p in params), sum(p.numel() for p in model.parameters())


def update(loss_sum, trained, params, opt, sched):
    """ft-train's update from the step's summed cross-entropy: the mean over
    its TRAINED tokens, backward, the gradient norm clipped to 1.0, the
    optimizer step, the schedule step, gradients cleared. Returns the loss
    and the gradient norm (before clipping) as tensors."""
    import torch
    loss = loss_sum / max(trained, 1)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return loss, gnorm


def add_run_args(p, micro_batch, warmup):
    """The options of a training run both scripts take: --model, --train,
    --method, --micro-batch (default MICRO_BATCH), --steps, --warmup
    (default WARMUP)."""
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--method", choices=("lora", "full"), required=True)
    p.add_argument("--micro-batch", type=int, default=micro_batch)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--warmup", type=int, default=warmup, help="steps left out of tok_s")
