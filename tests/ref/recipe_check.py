#!/usr/bin/env python3
"""The CrossWOZ recipe end to end, small: examples/crosswoz/run.sh with two
optimizer steps per training run and a handful of test prompts, then every
stage's output checked against the stage before it:

  extract + the recipe's data -> dialogs -> ft-augment variants -> ft-split
  -> ft-template samples and test prompts -> ft-tokenize shards -> ft-train
  runs and exports -> ft-generate predictions -> ft-eval reports -> report.

usage: recipe_check.py ROOT BIN SHARED WORKDIR
"""
import gzip
import json
import os
import re
import subprocess
import sys

ROOT, BIN, SHARED, WORK = sys.argv[1:5]
OUT = os.path.join(WORK, "run")
STEPS, PROMPTS, MAX_NEW = 2, 6, 24
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)


def raw_lines(name):
    with open(os.path.join(OUT, name), "rb") as f:
        return [line.rstrip(b"\n") for line in f if line.strip()]


def records(name):
    return [json.loads(line) for line in raw_lines(name)]


def trained_turns(dialog):
    return sum(t["role"] in ("search", "assistant") for t in dialog)


env = dict(os.environ, OUT=OUT, BIN=BIN, SHARED=SHARED, STEPS=str(STEPS),
           EVAL_PROMPTS=str(PROMPTS), MAX_NEW_TOKENS=str(MAX_NEW))
p = subprocess.run([os.path.join(ROOT, "examples", "crosswoz", "run.sh")], env=env,
                   capture_output=True, text=True)
if not check("run.sh exits 0 and says where the report is",
             p.returncode == 0 and f"report: {OUT}/report.md" in p.stdout,
             (p.returncode, p.stdout[-2000:], p.stderr[-3000:])):
    sys.exit(summary())

# ---- data: extract, augment, split -------------------------------------------------
with gzip.open(os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz"), "rb") as f:
    hotel = [line.rstrip(b"\n") for line in f if line.strip()]
crosswoz = raw_lines("crosswoz.jsonl")
dialogs = raw_lines("dialogs.jsonl")
check("dialogs = the recipe's dialogs, then the extracted ones",
      dialogs == hotel + crosswoz and len(crosswoz) > 0, (len(dialogs), len(hotel), len(crosswoz)))

aug = raw_lines("dialogs.aug.jsonl")
originals = [line for line in aug if b'"aug_of":' not in line]
variants = [json.loads(line) for line in aug if b'"aug_of":' in line]
check("ft-augment keeps every dialog byte for byte, in order", originals == dialogs)
ids = {json.loads(line)["id"] for line in dialogs}
check("variants: id SOURCE-lex1, group and aug_of the source, after their source",
      variants and all(v["id"] == f"{v['aug_of']}-lex1" and v["group"] == v["aug_of"]
                       and v["aug_of"] in ids and v["aug_model"] == "lexicon" for v in variants)
      and all(json.loads(aug[i - 1]).get("id") == json.loads(aug[i])["aug_of"]
              for i in range(len(aug)) if b'"aug_of":' in aug[i]), len(variants))

parts = {k: raw_lines(f"dialogs.{k}.jsonl") for k in ("train", "val", "test")}
check("ft-split: the three parts hold every record once",
      sorted(parts["train"] + parts["val"] + parts["test"]) == sorted(aug))
group_of = {}
for part, lines in parts.items():
    for line in lines:
        r = json.loads(line)
        group_of.setdefault(r.get("group", r["id"]), set()).add(part)
check("ft-split: a dialog and its variants in one part",
      all(len(s) == 1 for s in group_of.values()), [g for g, s in group_of.items() if len(s) > 1][:5])
n = len(aug)
check("ft-split: about 8:1:1",
      0.75 * n < len(parts["train"]) < 0.85 * n and 0.05 * n < len(parts["test"]) < 0.15 * n)

# ---- samples and prompts -----------------------------------------------------------
for part in ("train", "val"):
    samples = records(f"{part}.jsonl")
    src = [json.loads(line) for line in parts[part]]
    check(f"ft-template: one {part} sample per {part} dialog, same ids and order",
          [s["id"] for s in samples] == [r["id"] for r in src])
    check(f"ft-template: trained text in every {part} sample",
          all(any(g["train"] for g in s["segments"]) for s in samples))

test_orig = [json.loads(line) for line in parts["test"] if b'"aug_of":' not in line]
prompts_all = records("test.prompts.all.jsonl")
check("test prompts: one per search/assistant turn of the original test dialogs",
      len(prompts_all) == sum(trained_turns(d["dialog"]) for d in test_orig)
      and {q["source_id"] for q in prompts_all} <= {d["id"] for d in test_orig},
      (len(prompts_all),))
prompts = records("test.prompts.jsonl")
check(f"test prompts generated: the first {PROMPTS}", prompts == prompts_all[:PROMPTS])
check("references are search or assistant turns",
      all(re.match(r"(search:\n\{|assistant: )", q["reference"]) for q in prompts_all))

# ---- shards ------------------------------------------------------------------------
for part in ("train", "val"):
    stats = json.load(open(os.path.join(OUT, f"{part}.stats.json")))
    info = subprocess.run([os.path.join(BIN, "ft-shard"), "info", os.path.join(OUT, f"{part}.bin")],
                          capture_output=True, text=True).stdout
    docs = re.search(r"docs\s+(\d+)", info)
    check(f"ft-tokenize: every {part} sample is a document of the shard",
          stats["samples"] == len(parts[part]) and docs and int(docs.group(1)) == len(parts[part])
          and stats["truncated"] == 0, (stats["samples"], info[:300]))

# ---- training runs and exports -----------------------------------------------------
for run, export in (("pretrain", "model"), ("lora", "adapter"), ("full", "model")):
    m = [json.loads(line) for line in open(os.path.join(OUT, run, "metrics.jsonl"))]
    steps = [r for r in m if "loss" in r]
    check(f"ft-train {run}: {STEPS} steps, a validation loss, finite losses",
          [r["step"] for r in steps] == list(range(1, STEPS + 1))
          and any("eval_loss" in r for r in m)
          and all(r["loss"] == r["loss"] and r["loss"] < 20 for r in steps))
    check(f"ft-train {run}: exported {export}/",
          os.path.exists(os.path.join(OUT, run, export, "adapter_model.safetensors"
                                      if export == "adapter" else "model.safetensors")))
pre = [json.loads(line) for line in open(os.path.join(OUT, "pretrain", "metrics.jsonl"))]
lo = [json.loads(line) for line in open(os.path.join(OUT, "lora", "metrics.jsonl"))]
check("pretraining trains on every token, fine-tuning on the trained turns only",
      pre[0]["trained_tokens"] > 3 * lo[0]["trained_tokens"], (pre[0], lo[0]))

# ---- predictions and evaluation ----------------------------------------------------
for run in ("lora", "full"):
    pred = records(f"predictions.{run}.jsonl")
    check(f"ft-generate {run}: one prediction per prompt, same ids, references and order",
          [(x["id"], x["reference"]) for x in pred] == [(q["id"], q["reference"]) for q in prompts])
    check(f"ft-generate {run}: at most {MAX_NEW} new tokens, a stop reason",
          all(0 < x["completion_tokens"] <= MAX_NEW and x["stop"] in ("eos", "stop", "length")
              for x in pred))
    ev = json.load(open(os.path.join(OUT, f"eval.{run}.json")))
    kinds = [q["reference"].split(":", 1)[0] for q in prompts]
    check(f"ft-eval {run}: every prediction scored, by kind",
          ev["turns"] == len(pred) and ev["search"] == kinds.count("search")
          and ev["assistant"] == kinds.count("assistant"), ev)
    check(f"ft-eval {run}: metrics in [0, 1] where defined",
          all(ev[k] is None or 0 <= ev[k] <= 1
              for k in ("slot_p", "slot_r", "slot_f1", "bleu4", "exact_match")))

# ---- report ------------------------------------------------------------------------
md = open(os.path.join(OUT, "report.md"), encoding="utf-8").read()
html = open(os.path.join(OUT, "report.html"), encoding="utf-8").read()
check("report: records at each stage", f"| train dialogs (ft-split 8:1:1) | {len(parts['train']):,} |" in md)
stats = json.load(open(os.path.join(OUT, "train.stats.json")))
check("report: tokens and packing", f"| {stats['tokens']:,} |" in md
      and f"{100 * stats['packing_efficiency']:.2f}" in md)
for run in ("lora", "full"):
    ev = json.load(open(os.path.join(OUT, f"eval.{run}.json")))
    f1 = "-" if ev["slot_f1"] is None else f"{100 * ev['slot_f1']:.2f}"
    check(f"report: {run}'s metrics as ft-eval computed them",
          re.search(rf"^\| {run} \| {ev['turns']} \| .*\| {re.escape(f1)} \|", md, re.M) is not None)
check("report: predictions next to references", "prediction:" in md and "reference:" in md)
check("report.html: the loss curves inline", html.count("<svg") == 3 and "<table>" in html)

sys.exit(summary())
