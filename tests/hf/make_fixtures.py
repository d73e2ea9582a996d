#!/usr/bin/env python3
"""Write the Hugging Face reference fixtures that tests/train/test_hf.c checks
the CPU trainer against (make test does not need torch: the fixtures are
committed under tests/data/hf/).

Needs torch, transformers, peft, safetensors (a venv outside the repository):
    python3 -m venv /tmp/hfvenv
    /tmp/hfvenv/bin/pip install torch transformers peft safetensors numpy
    /tmp/hfvenv/bin/python tests/hf/make_fixtures.py [OUTDIR]
    /tmp/hfvenv/bin/python tests/hf/make_fixtures.py --generate-only [OUTDIR]

--generate-only writes generate.json from the models already in OUTDIR and
leaves every other file alone.

For each tiny configuration (CASES) it writes OUTDIR/<case>/:
  config.json, model.safetensors  the model, as save_pretrained writes it
                                  (fp32, or bf16/fp16 to exercise those
                                  readers; the reference computes in fp32 on
                                  the rounded weights)
  case.json     the batch (packed rows: tokens, mask, document starts), the
                loss sum and trained-label count, and the LoRA / AdamW
                settings used
  expected.safetensors  fp32 tensors:
    logits                   [B, T, V]
    grad.<name>              d(loss sum / trained) for every weight
    lora.<name>              LoRA A and B as used (PEFT names without the
                             adapter name); B is set to random values instead
                             of PEFT's zeros, so that A's gradient is not zero
    lora_grad.<name>         their gradients (base model frozen)
  peft/         the same adapters as PEFT's save_pretrained writes them
                (adapter_config.json, adapter_model.safetensors)
  generate.json greedy continuations (generate(do_sample=False)) of a few
                prompts of token ids by the saved model, and by the saved
                model with the peft/ adapter, as token ids, with the gap
                between the two largest logits at each step (for
                tests/train/test_generate.c and tests/ref/generate.sh)
    adamw.<name>             every weight after three AdamW steps on the batch
                             (full fine-tuning; no decay on norms and biases)

Packing convention, as the trainer: a row holds several documents; positions
restart at 0 at each document start and attention stays inside a document;
the label of position t is token t+1, counted only when mask[t+1] == 1 and
t+1 is in the same document. The reference runs each document on its own
(which is what packing must reproduce exactly) and sums.
"""
import copy
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

COMMON = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
              max_position_embeddings=256, rms_norm_eps=1e-5, bos_token_id=1,
              eos_token_id=2, pad_token_id=None)

# B=2 rows of T=16: row 0 has documents at 0, 5, 11; row 1 at 0, 9.
B, T = 2, 16
DOC_STARTS = [[0, 5, 11], [0, 9]]

# eps well above fp32 noise in the gradients: Adam divides each gradient by its
# own magnitude, so an element whose gradient is ~0 would move by +-lr on
# rounding noise alone; typical gradients here are 1e-2..1e-1, so the
# moments, bias corrections and decay are still what decides every step.
ADAMW = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-3, weight_decay=0.1, steps=3)

CASES = {
    # GQA, untied, fp32: everything, LoRA on all seven modules, AdamW
    "llama": dict(arch="llama", cfg=dict(), dtype=torch.float32,
                  lora=dict(r=4, alpha=8, rslora=False,
                            targets=["q_proj", "k_proj", "v_proj", "o_proj",
                                     "gate_proj", "up_proj", "down_proj"]),
                  adamw=True),
    # Qwen2: q/k/v bias (o without), bf16 weights, rsLoRA on q, v, down
    "qwen2": dict(arch="qwen2", cfg=dict(rope_theta=1000000.0), dtype=torch.bfloat16,
                  lora=dict(r=2, alpha=4, rslora=True,
                            targets=["q_proj", "v_proj", "down_proj"]),
                  adamw=True),
    # tied embeddings, fp16 weights
    "tied": dict(arch="llama", cfg=dict(tie_word_embeddings=True), dtype=torch.float16,
                 lora=None, adamw=False),
    # llama3 rope scaling (all three frequency bands hit) and head_dim != hidden/heads
    "llama3": dict(arch="llama",
                   cfg=dict(head_dim=16, rope_theta=10000.0,
                            rope_scaling=dict(rope_type="llama3", factor=8.0,
                                              low_freq_factor=1.0, high_freq_factor=4.0,
                                              original_max_position_embeddings=64)),
                   dtype=torch.float32, lora=None, adamw=False),
}


def make_model(case, seed):
    kw = dict(COMMON)
    kw.update(case["cfg"])
    if case["arch"] == "qwen2":
        kw.pop("bos_token_id")
        kw.pop("eos_token_id")
        cfg, cls = Qwen2Config(**kw), Qwen2ForCausalLM
    else:
        cfg, cls = LlamaConfig(**kw), LlamaForCausalLM
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = cls(cfg).float()
    # larger than HF's init so that attention and the norms matter; norms and
    # biases away from 1 and 0 so a mix-up shows
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
            # the stored dtype is what both sides compute from
            p.copy_(p.to(case["dtype"]).float())
    return model


def make_batch(gen, V):
    tokens = torch.randint(0, V, (B, T), generator=gen)
    mask = (torch.rand((B, T), generator=gen) < 0.7).to(torch.int64)
    return tokens, mask


def packed_loss(model, tokens, mask, want_logits=False):
    """Loss sum, trained count (and logits [B,T,V]) with each document run
    alone, which defines what packing must compute."""
    total = torch.zeros((), dtype=torch.float32)
    count = 0
    logits_all = torch.zeros((B, T, model.config.vocab_size)) if want_logits else None
    for r in range(B):
        starts = DOC_STARTS[r] + [T]
        for s, e in zip(starts[:-1], starts[1:]):
            ids = tokens[r, s:e].unsqueeze(0)
            logits = model(input_ids=ids, use_cache=False).logits[0]
            if want_logits:
                logits_all[r, s:e] = logits.detach()
            labels = tokens[r, s + 1:e].clone()
            keep = mask[r, s + 1:e].bool()
            labels[~keep] = -100
            if keep.any():
                total = total + F.cross_entropy(logits[:-1], labels, ignore_index=-100,
                                                reduction="sum")
                count += int(keep.sum())
    return total, count, logits_all


def save_model(model, case, d):
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # a copy: .to(dtype) in place would also round the rotary inv_freq buffer
    # of the reference model (not saved; transformers recomputes it in fp32)
    copy.deepcopy(model).to(case["dtype"]).save_pretrained(tmp, safe_serialization=True)
    os.makedirs(d, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        shutil.move(os.path.join(tmp, f), os.path.join(d, f))
    shutil.rmtree(tmp)


def run_case(name, case, outdir, seed):
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    model = make_model(case, seed)
    save_model(model, case, d)
    gen = torch.Generator().manual_seed(seed + 1)
    tokens, mask = make_batch(gen, model.config.vocab_size)
    out = {}
    info = dict(B=B, T=T, tokens=tokens.flatten().tolist(), mask=mask.flatten().tolist(),
                doc_offsets=[0] + list(torch.cumsum(torch.tensor([len(s) for s in DOC_STARTS]),
                                                    0).tolist()),
                doc_starts=[s for row in DOC_STARTS for s in row])

    # logits, loss, gradients of every weight
    model.zero_grad()
    loss_sum, count, logits = packed_loss(model, tokens, mask, want_logits=True)
    (loss_sum / count).backward()
    out["logits"] = logits
    for n, p in model.named_parameters():
        out["grad." + n] = p.grad.detach().clone()
    info["loss_sum"] = loss_sum.item()
    info["trained"] = count

    # LoRA with PEFT: base frozen, B random so A's gradient is not trivially 0
    if case["lora"]:
        from peft import LoraConfig, get_peft_model
        lc = case["lora"]
        base = make_model(case, seed)
        peft = get_peft_model(base, LoraConfig(r=lc["r"], lora_alpha=lc["alpha"],
                                               target_modules=lc["targets"], lora_dropout=0.0,
                                               use_rslora=lc["rslora"], bias="none"))
        torch.manual_seed(seed + 2)
        with torch.no_grad():
            for n, p in peft.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.1 * torch.randn_like(p))
        peft.zero_grad()
        lsum, lcount, _ = packed_loss(peft, tokens, mask)
        (lsum / lcount).backward()
        for n, p in peft.named_parameters():
            if "lora_" in n:
                key = n.replace(".default", "")
                out["lora." + key] = p.detach().clone()
                out["lora_grad." + key] = p.grad.detach().clone()
        info["lora"] = dict(rank=lc["r"], alpha=lc["alpha"], rslora=lc["rslora"],
                            targets=",".join(lc["targets"]), loss_sum=lsum.item())
        # the adapter as PEFT saves it, for the trainer's PEFT reader and writer
        peft.save_pretrained(os.path.join(d, "peft"))
        os.remove(os.path.join(d, "peft", "README.md"))   # a model card template

    # three AdamW steps of full fine-tuning on the same batch
    if case["adamw"]:
        a = ADAMW
        decay = [p for n, p in model.named_parameters() if p.dim() == 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([dict(params=decay, weight_decay=a["weight_decay"]),
                                 dict(params=no_decay, weight_decay=0.0)],
                                lr=a["lr"], betas=a["betas"], eps=a["eps"], foreach=False)
        losses = []
        for _ in range(a["steps"]):
            opt.zero_grad()
            s, c, _ = packed_loss(model, tokens, mask)
            (s / c).backward()
            opt.step()
            losses.append(s.item())
        for n, p in model.named_parameters():
            out["adamw." + n] = p.detach().clone()
        info["adamw"] = dict(lr=a["lr"], beta1=a["betas"][0], beta2=a["betas"][1],
                             eps=a["eps"], weight_decay=a["weight_decay"], steps=a["steps"],
                             loss_sums=losses)

    save_file({k: v.contiguous().float() for k, v in out.items()},
              os.path.join(d, "expected.safetensors"))
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print(f"{name}: loss {info['loss_sum'] / count:.6f} over {count} labels", file=sys.stderr)


# Greedy decoding: prompts of token ids (seeded), new tokens each
GEN_PROMPTS = 3
GEN_NEW = 20


def greedy(model, ids):
    """transformers' greedy generate on one prompt: the new ids and, per
    step, the gap between the largest and second largest logit."""
    out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                                                                   dtype=torch.long),
                         max_new_tokens=GEN_NEW, do_sample=False, num_beams=1,
                         output_logits=True, return_dict_in_generate=True,
                         pad_token_id=0)
    new = out.sequences[0, len(ids):].tolist()
    gaps = []
    for step in out.logits:
        top = torch.topk(step[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    return new, gaps


def run_generate(name, outdir, seed):
    """generate.json for the model (and adapter) saved in outdir/name."""
    from transformers import AutoModelForCausalLM
    d = os.path.join(outdir, name)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    gen = torch.Generator().manual_seed(seed + 3)
    V = model.config.vocab_size
    lengths = [1, 7, 23][:GEN_PROMPTS]
    prompts = [torch.randint(0, V, (n,), generator=gen).tolist() for n in lengths]
    eos = model.generation_config.eos_token_id
    info = dict(max_new_tokens=GEN_NEW, eos_token_id=eos, prompts=prompts, base=[], peft=[])
    with torch.no_grad():
        for ids in prompts:
            new, gaps = greedy(model, ids)
            info["base"].append(dict(ids=new, min_gap=min(gaps)))
        if os.path.isdir(os.path.join(d, "peft")):
            from peft import PeftModel
            adapted = PeftModel.from_pretrained(model, os.path.join(d, "peft"))
            adapted.eval()
            for ids in prompts:
                new, gaps = greedy(adapted, ids)
                info["peft"].append(dict(ids=new, min_gap=min(gaps)))
    with open(os.path.join(d, "generate.json"), "w") as f:
        json.dump(info, f)
        f.write("\n")
    print(f"{name}: generate.json", file=sys.stderr)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    only_generate = "--generate-only" in args
    args = [a for a in args if a != "--generate-only"]
    outdir = args[0] if args else os.path.join(here, "..", "data", "hf")
    for i, (name, case) in enumerate(CASES.items()):
        if not only_generate:
            run_case(name, case, outdir, 1000 + 10 * i)
        run_generate(name, outdir, 1000 + 10 * i)


if __name__ == "__main__":
    main()
