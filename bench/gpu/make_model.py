#!/usr/bin/env python3
"""Write a random-initialised Hugging Face model at a given configuration,
fast: built on the GPU by transformers (its own initialisation), saved as
bf16 safetensors. Both sides of the GPU benchmarks load the same files.

usage: make_model.py CONFIG.json OUTDIR [SEED]
"""
import json
import sys

import torch
import transformers

cfg_path, out = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
torch.manual_seed(seed)
config = transformers.AutoConfig.for_model(**json.load(open(cfg_path)))
device = "cuda" if torch.cuda.is_available() else "cpu"
with torch.device(device):
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
n = sum(p.numel() for p in model.parameters())
print(f"make_model: {out}: {n} parameters ({config.model_type}, bf16)", file=sys.stderr)
