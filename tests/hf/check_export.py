#!/usr/bin/env python3
"""Check what ft-train exported with Hugging Face's own loaders (needs torch,
transformers, peft, numpy: the venv of make_fixtures.py; not part of make
test, which checks the same files against committed PEFT fixtures).

    check_export.py BASE RUN VAL_SHARD

BASE      the base model directory the run started from
RUN       the run directory (a LoRA run with merge = true and export_dtype
          = "f32", or a full run with export_dtype = "f32")
VAL_SHARD the run's validation shard

Checks:
 1. PeftModel.from_pretrained(BASE, RUN/adapter) loads with no missing or
    unexpected keys (LoRA runs);
 2. its logits equal those of RUN/merged loaded by AutoModelForCausalLM;
 3. the loss on VAL_SHARD, each document run alone (what packing must
    compute), equals the last eval_loss in RUN/metrics.jsonl.
"""
import json
import os
import re
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

# read_shard() as docs/shard-format.md documents it
_doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                    "shard-format.md")
_code = re.search(r"```python\n(.*?)```", open(_doc, encoding="utf-8").read(), re.S).group(1)
_ns = {}
exec(_code.split("\ns = read_shard(")[0], _ns)
read_shard = _ns["read_shard"]

torch.set_num_threads(max(1, os.cpu_count() or 1))


def doc_loss(model, shard):
    total, count = 0.0, 0
    for r in range(len(shard["rows"]) - 1):
        for d in shard["docs"][shard["rows"][r]:shard["rows"][r + 1]]:
            s, n = int(d["start"]), int(d["len"])
            ids = torch.tensor(shard["tokens"][r, s:s + n].astype("int64")).unsqueeze(0)
            keep = torch.tensor(shard["mask"][r, s + 1:s + n].astype(bool))
            if not keep.any():
                continue
            with torch.no_grad():
                logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            labels = ids[0, 1:].clone()
            labels[~keep] = -100
            total += F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum").item()
            count += int(keep.sum())
    return total / count, count


def main():
    base, run, val = sys.argv[1:4]
    shard = read_shard(val)
    evals = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if "eval_loss" in l]
    ours = evals[-1]["eval_loss"]
    ok = True
    if os.path.isdir(os.path.join(run, "adapter")):
        from peft import PeftModel
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, os.path.join(run, "adapter"))
        model.eval()
        loaded = sum(1 for n, _ in model.named_parameters() if "lora_" in n)
        print(f"PEFT loaded {loaded} LoRA tensors from {run}/adapter")
        merged = AutoModelForCausalLM.from_pretrained(os.path.join(run, "merged"),
                                                      dtype=torch.float32).eval()
        ids = torch.tensor(shard["tokens"][0, :64].astype("int64")).unsqueeze(0)
        with torch.no_grad():
            a = model(input_ids=ids).logits
            b = merged(input_ids=ids).logits
        diff = (a - b).abs().max().item() / a.abs().max().item()
        print(f"PEFT logits vs merged model: max relative difference {diff:.2e}")
        ok &= diff < 1e-4
    else:
        model = AutoModelForCausalLM.from_pretrained(os.path.join(run, "model"),
                                                     dtype=torch.float32).eval()
    ref, n = doc_loss(model, shard)
    rel = abs(ref - ours) / abs(ref)
    print(f"validation loss over {n} tokens: transformers {ref:.6f}, ft-train {ours:.6f} "
          f"(relative difference {rel:.2e})")
    ok &= rel < 1e-4
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
