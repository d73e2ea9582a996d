#!/usr/bin/env python3
"""ft-train end to end on real data (hotel dialogs, chinese-20k tokenizer, a
small random model), checked from the outside with numpy alone:

  - a LoRA run writes what it promises: metrics, resolved recipe, loss plot,
    rotated checkpoints, a PEFT-named adapter;
  - resume gives bit-identical losses and adapters, from a checkpoint, after
    kill -9 and after SIGINT;
  - the objective does not depend on how a step is cut (micro-batch x
    accumulation) nor on packing versus padding;
  - full fine-tuning freezes exactly what the recipe freezes;
  - the merged export is base + scaling * B A;
  - a NaN stops the run naming the step.

usage: train_check.py BIN SHARED WORKDIR
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np

BIN, SHARED, WORK = sys.argv[1:4]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, hotel_setup, metrics, run, st_read, steps, summary  # noqa: E402  (tests/checks.py)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


os.chdir(WORK)
FT_TRAIN = os.path.join(BIN, "ft-train")

# ---- data and a small model ---------------------------------------------------
spm = hotel_setup(BIN, SHARED, dialogs=40, ntrain=32, seq_len=256)
config = json.load(open("config.json"))
for name, extra in (("trainpack", ["-L", "1024"]), ("trainpad", ["-L", "1024", "--pad"])):
    run(os.path.join(BIN, "ft-tokenize"), "-q", "-m", spm, *extra, "-o", name + ".bin",
        "train.jsonl")

COMMON = ["--model", "base", "--train", "train.bin", "--val", "val.bin", "--micro-batch", "2",
          "--grad-accum", "2", "--max-steps", "24", "--eval-every", "12", "--save-every", "4",
          "--lr", "5e-3", "--lora-dropout", "0.1", "--warmup-steps", "2"]


def train(out, *extra, ok=True):
    return run(FT_TRAIN, "train", *COMMON, "-o", out, *extra, ok=ok)


# ---- a LoRA run and what it writes ----------------------------------------------
p = train("a")
A = metrics("a")
check("a: 24 step lines and 2 evaluations",
      len(steps(A)) == 24 and sum("eval_loss" in r for r in A) == 2, str(A))
check("a: the loss goes down", steps(A)[-1]["loss"] < steps(A)[0]["loss"])
check("a: warmup then cosine",
      rel(steps(A)[0]["lr"], 2.5e-3) < 1e-12 and rel(steps(A)[1]["lr"], 5e-3) < 1e-12 and
      steps(A)[23]["lr"] < steps(A)[2]["lr"])
ev = [r for r in A if "eval_loss" in r]
best_step = min(ev, key=lambda r: r["eval_loss"])["step"]
check("a: perplexity is exp(loss)", all(rel(r["eval_ppl"], np.exp(r["eval_loss"])) < 1e-9 for r in ev))
check("a: progress on stderr", re.search(r"step 24/24 \| epoch [0-9.]+ \| loss [0-9.]+ \| lr .* tok/s \| ETA",
                                         p.stderr) is not None, p.stderr[-500:])
check("a: trainable/total parameters printed",
      re.search(r"trainable \d+ of \d+ parameters", p.stderr) is not None)
check("a: resolved recipe printed and saved",
      "lora_rank = 8" in p.stderr and "micro_batch = 2" in open("a/recipe.toml").read())
# ---- train_on_inputs: every document token a label (continued pretraining) --------
train("all", "--max-steps", "2", "--train-on-inputs", "true")
S0, S1 = steps(A)[0], steps(metrics("all"))[0]
check("train_on_inputs: the same rows, more labels: all but each document's first token",
      S1["tokens"] == S0["tokens"] and S1["trained_tokens"] > S0["trained_tokens"] and
      0.95 * S1["tokens"] < S1["trained_tokens"] < S1["tokens"], (S0, S1))
svg = ET.parse("a/loss.svg").getroot()
check("a: loss.svg is SVG with a curve and 2 evaluation points",
      svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) == 1 and
      len(svg.findall(".//{http://www.w3.org/2000/svg}circle")) == 2 + 1)
check("a: keep_last 2 (best is among them)",
      sorted(os.listdir("a/checkpoints")) == sorted({"step-00000020", "step-00000024"} |
                                                    {"step-%08d" % best_step}),
      str(os.listdir("a/checkpoints")))
check("a: checkpoint contents", sorted(os.listdir("a/checkpoints/step-00000024")) ==
      ["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
       "trainer_state.json"])
ad, meta = st_read("a/adapter/adapter_model.safetensors")
names = sorted(ad)
pat = re.compile(r"^base_model\.model\.model\.layers\.[01]\.(self_attn\.[qkvo]_proj|"
                 r"mlp\.(gate|up|down)_proj)\.lora_[AB]\.weight$")
check("a: 28 adapter tensors, PEFT names", len(names) == 28 and all(pat.match(n) for n in names),
      str(names[:3]))
check("a: A is r x in, B is out x r", ad["base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"].shape == (8, 64)
      and ad["base_model.model.model.layers.0.self_attn.k_proj.lora_B.weight"].shape == (32, 8)
      and ad["base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"].shape == (8, 128))
check("a: safetensors metadata format pt", meta.get("format") == "pt")
ac = json.load(open("a/adapter/adapter_config.json"))
check("a: adapter_config.json", ac["peft_type"] == "LORA" and ac["r"] == 8 and
      ac["lora_alpha"] == 16 and ac["task_type"] == "CAUSAL_LM" and
      sorted(ac["target_modules"]) == sorted(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                              "up_proj", "down_proj"]) and not ac["use_rslora"])
check("a: tokenizer copied with the adapter", os.path.exists("a/adapter/tokenizer.model"))


def same_run(a, b, what):
    check(f"{what}: metrics identical to the uninterrupted run", metrics(a) == metrics(b),
          f"\n{metrics(a)}\n{metrics(b)}")
    check(f"{what}: adapter byte-identical",
          open(f"{a}/adapter/adapter_model.safetensors", "rb").read() ==
          open(f"{b}/adapter/adapter_model.safetensors", "rb").read())


# ---- activation recomputation: the same run, bit for bit ----------------------
train("rc", "--recompute")
same_run("a", "rc", "recompute")

# ---- resume --------------------------------------------------------------------
shutil.copytree("a", "b")
shutil.rmtree("b/adapter")
shutil.rmtree("b/checkpoints/step-00000024")
p = train("b", "--resume", "--threads", "1")
check("b: resumes from the latest checkpoint", "resuming from b/checkpoints/step-00000020 at step 20"
      in p.stderr, p.stderr[-400:])
same_run("a", "b", "resume from step 20 (1 thread)")


def wait_for(path, proc, limit=120):
    t0 = time.time()
    while not os.path.exists(path):
        if proc.poll() is not None or time.time() - t0 > limit:
            return False
        time.sleep(0.02)
    return True


for sig, name in ((signal.SIGKILL, "kill -9"), (signal.SIGINT, "SIGINT")):
    out = "k" if sig == signal.SIGKILL else "i"
    proc = subprocess.Popen([FT_TRAIN, "train", *COMMON, "-o", out], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # 24 steps: the signal lands while the run is still going
    reached = wait_for(f"{out}/checkpoints/step-00000004", proc)
    proc.send_signal(sig)
    _, err = proc.communicate()
    check(f"{name}: the run was stopped after a checkpoint", reached and proc.returncode != 0,
          f"reached {reached}, exit {proc.returncode}")
    if sig == signal.SIGINT:
        check("SIGINT: exit 130, checkpoint written, says how to go on",
              proc.returncode == 130 and "--resume continues" in err, err[-300:])
    check(f"{name}: no adapter exported by a stopped run", not os.path.exists(f"{out}/adapter"))
    p = train(out, "--resume")
    same_run("a", out, name)

p = train("b", "--resume", "--micro-batch", "2", "--grad-accum", "3", ok=False)
check("resume with other micro-batches is refused", p.returncode == 1 and
      "trained on other rows" in p.stderr, p.stderr[-300:])

# ---- the objective ---------------------------------------------------------------
FULL = ["--method", "full", "--shuffle", "false", "--max-steps", "2", "--save-every", "0",
        "--lr", "1e-3", "--max-grad-norm", "0"]
cuts = {}
for mb, ga in ((4, 1), (1, 4), (2, 2), (3, 2)):
    out = f"cut{mb}x{ga}"
    run(FT_TRAIN, "train", "--model", "base", "--train", "train.bin", "-o", out, *FULL,
        "--micro-batch", mb, "--grad-accum", ga)
    cuts[(mb, ga)] = steps(metrics(out))
ref = cuts[(4, 1)]
for key in ((1, 4), (2, 2)):
    c = cuts[key]
    check(f"micro-batch {key[0]} x accumulation {key[1]} = 4 x 1: loss and gradient norm",
          all(rel(c[i]["loss"], ref[i]["loss"]) < 1e-5 and
              rel(c[i]["grad_norm"], ref[i]["grad_norm"]) < 1e-4 for i in range(2)),
          f"{c} vs {ref}")
check("3 x 2 rows per step differs from 4 x 1 (the check can fail)",
      rel(cuts[(3, 2)][1]["loss"], ref[1]["loss"]) > 1e-5)

npack = int(run(os.path.join(BIN, "ft-shard"), "info", "trainpack.bin").stdout.split("rows")[1].split()[0])
npad = int(run(os.path.join(BIN, "ft-shard"), "info", "trainpad.bin").stdout.split("rows")[1].split()[0])
one = []
for shard, rows in (("trainpack.bin", npack), ("trainpad.bin", npad)):
    out = "one-" + shard.split(".")[0]
    run(FT_TRAIN, "train", "--model", "base", "--train", shard, "-o", out, *FULL,
        "--max-steps", "1", "--micro-batch", rows)
    one.append(steps(metrics(out))[0])
check(f"packed ({npack} rows) and padded ({npad} rows): same loss and gradient",
      npack < npad and one[0]["trained_tokens"] == one[1]["trained_tokens"] and
      rel(one[0]["loss"], one[1]["loss"]) < 1e-5 and
      rel(one[0]["grad_norm"], one[1]["grad_norm"]) < 1e-4, str(one))
check("padding is trimmed: the padded step computes fewer positions than rows x 1024",
      one[1]["tokens"] < npad * 1024)

# ---- what full fine-tuning trains -----------------------------------------------
run(FT_TRAIN, "train", "--model", "base", "--train", "train.bin", "-o", "frozen", "--method",
    "full", "--max-steps", "2", "--freeze-layers", "1", "--freeze-embeddings", "--train-modules",
    "q,v,norm", "--export-dtype", "f32", "--lr", "1e-2")
base, _ = st_read("base/model.safetensors")
tuned, _ = st_read("frozen/model/model.safetensors")
changed = {n for n in base if not np.array_equal(base[n], tuned[n])}
want = {"lm_head.weight", "model.norm.weight"} | {
    f"model.layers.1.{m}.weight" for m in ("self_attn.q_proj", "self_attn.v_proj",
                                           "input_layernorm", "post_attention_layernorm")}
check("full: exactly the unfrozen modules changed", changed == want,
      f"changed {sorted(changed)}")
check("full: exported model has every weight and the tokenizer",
      set(tuned) == set(base) and os.path.exists("frozen/model/tokenizer.model") and
      json.load(open("frozen/model/config.json")) == config)

# ---- merged export --------------------------------------------------------------
run(FT_TRAIN, "train", "--model", "base", "--train", "train.bin", "-o", "m", "--max-steps", "2",
    "--lr", "1e-2", "--merge", "--export-dtype", "f32", "--lora-targets", "q,down",
    "--use-rslora", "--lora-rank", "4")
ad, _ = st_read("m/adapter/adapter_model.safetensors")
merged, _ = st_read("m/merged/model.safetensors")
scale = 16 / np.sqrt(4)
worst = 0.0
for name, w in base.items():
    m = re.match(r"model\.layers\.(\d+)\.(self_attn\.q_proj|mlp\.down_proj)\.weight", name)
    want = w
    if m:
        pre = f"base_model.model.model.layers.{m.group(1)}.{m.group(2)}"
        want = w + scale * (ad[pre + ".lora_B.weight"].astype(np.float64) @
                            ad[pre + ".lora_A.weight"].astype(np.float64))
    worst = max(worst, float(np.max(np.abs(merged[name] - want))))
check(f"merged = base + alpha/sqrt(r) * B A (rsLoRA), worst {worst:.2g}", worst < 1e-6)

# ---- non-finite values ---------------------------------------------------------
shutil.copytree("base", "nan")
raw = bytearray(open("nan/model.safetensors", "rb").read())
n = struct.unpack_from("<Q", raw, 0)[0]
hdr = json.loads(raw[8:8 + n])
off = 8 + n + hdr["model.layers.1.mlp.up_proj.weight"]["data_offsets"][0]
struct.pack_into("<f", raw, off + 4 * 17, float("nan"))
open("nan/model.safetensors", "wb").write(raw)
p = run(FT_TRAIN, "train", "--model", "nan", "--train", "train.bin", "-o", "nanrun",
        "--max-steps", "2", ok=False)
check("a NaN weight stops the run at step 1, exit 1", p.returncode == 1 and
      "step 1: the loss is NaN" in p.stderr, p.stderr[-300:])
check("and exports nothing", not os.path.exists("nanrun/adapter"))

sys.exit(summary())
