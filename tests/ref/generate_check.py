#!/usr/bin/env python3
"""ft-generate end to end, checked from the outside (no torch: the Hugging
Face side is the committed tests/data/hf/*/generate.json):

  - greedy ids equal transformers' generate(do_sample=False) for the fixture
    models, with and without their PEFT adapters (--ids);
  - prompts are tokenized exactly as ft-tokenize tokenizes the same samples;
  - the output does not depend on --batch or the thread count, greedy or
    sampled; a seed reproduces a sampled run, another seed changes it;
  - --max-new-tokens, --stop, end-of-sequence ids, left truncation of long
    prompts, -o, passthrough of the input fields, input order;
  - an ft-train LoRA adapter gives what its merged export gives.

usage: generate_check.py BIN SHARED WORKDIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

BIN, SHARED, WORK = sys.argv[1:4]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HF = os.path.join(ROOT, "tests", "data", "hf")
GEN = os.path.join(BIN, "ft-generate")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, run, summary  # noqa: E402  (tests/checks.py)


def lines(text):
    return [json.loads(x) for x in text.splitlines()]


os.makedirs(WORK, exist_ok=True)
os.chdir(WORK)
spm = os.path.join(SHARED, "tokenizers", "chinese-20k.model")

# ---- Hugging Face parity through the command line -------------------------------
for case in ("llama", "qwen2", "tied", "llama3"):
    fix = json.load(open(os.path.join(HF, case, "generate.json")))
    with open(case + ".ids.jsonl", "w") as f:
        for i, p in enumerate(fix["prompts"]):
            f.write(json.dumps({"id": f"{case}{i}", "prompt_ids": p}) + "\n")
    for which, extra in (("base", []), ("peft", ["--adapter", os.path.join(HF, case, "peft")])):
        if not fix[which]:
            continue
        out = lines(run(GEN, "-q", "-m", os.path.join(HF, case), *extra, "--ids", "--print-ids",
                        "-n", fix["max_new_tokens"], case + ".ids.jsonl").stdout)
        got = [r["completion_ids"] for r in out]
        want = [r["ids"] for r in fix[which]]
        check(f"{case} {which}: greedy ids = transformers' ({sum(map(len, want))} tokens)",
              got == want, f"{got} != {want}")

# ---- a small model on real prompts ----------------------------------------------
dialogs = [json.loads(x) for x in
           subprocess.run(["zcat", os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz")],
                          capture_output=True, text=True).stdout.splitlines()[:6]]
with open("dialogs.jsonl", "w") as f:
    for d in dialogs:
        f.write(json.dumps(d, ensure_ascii=False) + "\n")
hotel = os.path.join(ROOT, "examples", "crosswoz", "hotel.jinja")
run(os.path.join(BIN, "ft-template"), "-t", hotel, "--mode", "prompt", "-o", "prompts.jsonl",
    "dialogs.jsonl")
prompts = [json.loads(x) for x in open("prompts.jsonl")]
# the first 12, the shorter ones, keep the run short
prompts = sorted(prompts, key=lambda r: len(json.dumps(r)))[:12]
with open("prompts.jsonl", "w") as f:
    for r in prompts:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64,
              intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=20000, max_position_embeddings=1024,
              rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
              initializer_range=0.05, bos_token_id=1, eos_token_id=2)
json.dump(config, open("config.json", "w"))
shutil.rmtree("base", ignore_errors=True)
run(os.path.join(BIN, "ft-train"), "init", "--config", "config.json", "-o", "base", "--seed", "9")
shutil.copy(spm, "base/tokenizer.model")


def gen(*extra, model="base", src="prompts.jsonl"):
    return run(GEN, "-q", "-m", model, "--print-ids", *extra, src)


greedy = gen("-n", "24", "-b", "1")
G = lines(greedy.stdout)
check("one line per prompt, in input order, fields passed through",
      [r["id"] for r in G] == [p["id"] for p in prompts] and
      all(r["reference"] == p["reference"] and r["source_id"] == p["source_id"] and
          r["turn"] == p["turn"] and r["group"] == p["group"] and "segments" not in r
          for r, p in zip(G, prompts)))
check("counts and stop reasons", all(r["prompt_tokens"] == len(r["prompt_ids"]) and
                                     r["completion_tokens"] == len(r["completion_ids"]) and
                                     r["stop"] in ("eos", "length") for r in G))

# prompts as ft-tokenize tokenizes them (its rows need trained text: flags do
# not change ids)
with open("trained.jsonl", "w") as f:
    for p in prompts:
        q = dict(p, segments=[dict(s, train=True) for s in p["segments"]])
        f.write(json.dumps(q, ensure_ascii=False) + "\n")
run(os.path.join(BIN, "ft-tokenize"), "-q", "-m", spm, "-L", "4096", "--pad", "-o", "tok.bin",
    "trained.jsonl")
rows = lines(run(os.path.join(BIN, "ft-shard"), "dump", "-m", spm, "--format=jsonl",
                 "tok.bin").stdout)
tok = [row["ids"][:row["len"]] for row in rows]
check("prompt ids = ft-tokenize's", tok == [r["prompt_ids"] for r in G])

# token healing: the prompts end in "\n\n", which SentencePiece leaves out of
# the prompt's tokens (in a training row it is the "▁" starting the next
# token), so the first token generated starts with "▁" (or ends the text);
# a random model left alone would pick from all 20,000 pieces
import sentencepiece  # noqa: E402  (python3-sentencepiece, a test reference)
sp = sentencepiece.SentencePieceProcessor(model_file=spm)
check("prompts ending in whitespace: the first token generated starts with '▁' or is EOS",
      all(p["segments"][-1]["text"].endswith("\n\n") for p in prompts) and
      all(r["completion_ids"][0] == 2 or sp.id_to_piece(r["completion_ids"][0]).startswith("\u2581")
          for r in G), [sp.id_to_piece(r["completion_ids"][0]) for r in G])

for b, extra in (("4", []), ("3", ["--threads", "1"]), ("12", [])):
    check(f"greedy: --batch {b} {' '.join(extra)} = --batch 1",
          gen("-n", "24", "-b", b, *extra).stdout == greedy.stdout)

SAMPLE = ["--temperature", "0.8", "--top-k", "50", "--top-p", "0.95"]
s1 = gen("-n", "16", *SAMPLE, "--seed", "7", "-b", "1").stdout
check("sampling: --batch 5 = --batch 1", gen("-n", "16", *SAMPLE, "--seed", "7", "-b", "5").stdout == s1)
check("sampling: the seed reproduces", gen("-n", "16", *SAMPLE, "--seed", "7").stdout == s1)
check("sampling: another seed, other tokens", gen("-n", "16", *SAMPLE, "--seed", "8").stdout != s1)
check("sampling differs from greedy",
      [r["completion_ids"] for r in lines(s1)] != [r["completion_ids"][:16] for r in G])

short = lines(gen("-n", "5").stdout)
check("--max-new-tokens 5: greedy's first 5, stop 'length'",
      all(s["completion_ids"] == g["completion_ids"][:5] and
          (s["stop"] == "length") == (len(s["completion_ids"]) == 5 and g["stop"] != "eos"
                                      or len(g["completion_ids"]) > 5)
          for s, g in zip(short, G)))

# a stop string taken from the middle of record 0's greedy text
text = G[0]["prediction"]
stop = text[3:5]
S = lines(gen("-n", "24", "--stop", stop, "--stop", "\u2603never").stdout)
cut = text[:text.find(stop)]
check(f"--stop '{stop}': text cut before it, stop 'stop'",
      S[0]["stop"] == "stop" and S[0]["prediction"] == cut and
      S[0]["completion_ids"] == G[0]["completion_ids"][:len(S[0]["completion_ids"])],
      f"{S[0]} vs {cut!r}")
check("--stop: other records unchanged where the string is absent",
      all(s == g for s, g in zip(S[1:], G[1:]) if stop not in g["prediction"]))

# an end-of-sequence id from generation_config.json
eos_id = G[0]["completion_ids"][2]
shutil.copytree("base", "eosmodel", dirs_exist_ok=True)
json.dump({"eos_token_id": [99999, eos_id]}, open("eosmodel/generation_config.json", "w"))
E = lines(gen("-n", "24", model="eosmodel").stdout)
k = G[0]["completion_ids"].index(eos_id) + 1
check("generation_config.json eos: stop 'eos', the token counted, not in the text",
      E[0]["stop"] == "eos" and E[0]["completion_ids"] == G[0]["completion_ids"][:k] and
      len(E[0]["prediction"]) <= len(G[0]["prediction"]))

out = run(GEN, "-q", "-m", "base", "--print-ids", "-n", "24", "-o", "out.jsonl", "prompts.jsonl")
check("-o writes what stdout gets", out.stdout == "" and open("out.jsonl").read() == greedy.stdout)
check("-o leaves no temporary file", not [f for f in os.listdir(".") if f.startswith(".out.jsonl")])

# left truncation: a context of 96 with 32 new tokens leaves 64 for the prompt
small = dict(config, max_position_embeddings=96)
shutil.copytree("base", "ctx96", dirs_exist_ok=True)
json.dump(small, open("ctx96/config.json", "w"))
p = gen("-n", "32", model="ctx96")
T = lines(p.stdout)
long_ones = [g for g in G if g["prompt_tokens"] > 64]
warned = re.findall(r"prompt of (\d+) tokens cut to 64 from the left", p.stderr)
check(f"truncation: {len(long_ones)} prompts cut to BOS + their last 63 tokens, each warned",
      len(long_ones) > 0 and len(warned) == len(long_ones) and
      all(t["prompt_tokens"] == min(g["prompt_tokens"], 64) and
          (g["prompt_tokens"] <= 64 or t["prompt_ids"] == [1] + g["prompt_ids"][-63:])
          for t, g in zip(T, G)), p.stderr[-500:])
q = run(GEN, "-m", "ctx96", "-n", "32", "prompts.jsonl")
check("truncation: counted in the summary",
      re.search(rf"{len(prompts)} records, .* generated in .* tokens/s\), {len(long_ones)} truncated",
                q.stderr) is not None, q.stderr[-300:])

# ---- an adapter from ft-train ---------------------------------------------------
with open("train.jsonl", "w") as f:
    for p in prompts:
        f.write(json.dumps(dict(p, segments=p["segments"] + [
            {"text": p["reference"], "train": True, "template": False}]), ensure_ascii=False) + "\n")
run(os.path.join(BIN, "ft-tokenize"), "-q", "-m", spm, "-L", "512", "-o", "train.bin", "train.jsonl")
shutil.rmtree("run", ignore_errors=True)
run(os.path.join(BIN, "ft-train"), "train", "--model", "base", "--train", "train.bin", "-o", "run",
    "--max-steps", "3", "--lr", "5e-2", "--merge", "--export-dtype", "f32")
A = gen("-n", "24", "--adapter", "run/adapter").stdout
M = gen("-n", "24", model="run/merged").stdout
check("ft-train adapter: = its merged export, and changes the output", A == M and A != greedy.stdout)
bad = run(GEN, "-m", "base", "--adapter", "nowhere", "prompts.jsonl", ok=False)
check("a missing adapter is an error", bad.returncode == 1 and "nowhere" in bad.stderr, bad.stderr)

# interactive: a line is a prompt of data text, as a sample with that segment
with open("raw.jsonl", "w") as f:
    for i, t in enumerate(["hello", "你好，我想找一个酒店"]):
        f.write(json.dumps({"id": i, "segments": [{"text": t, "template": False}]},
                           ensure_ascii=False) + "\n")
R = lines(gen("-n", "12", src="raw.jsonl").stdout)
p = run(GEN, "-m", "base", "-i", "-n", "12", input="hello\n你好，我想找一个酒店\n")
check("--interactive: each line's continuation, as in batch mode",
      p.stdout.splitlines() == [r["prediction"] for r in R], p.stdout)
p = run(GEN, "-m", "base", "-i", "-n", "6", "-T", os.path.join(ROOT, "templates", "chatml.jinja"),
        input="hello\nagain\n")
check("--interactive -T: a reply per line", len(p.stdout.splitlines()) == 2, p.stdout)

# speed, for the log
p = run(GEN, "-m", "base", "-n", "64", "-b", "8", "prompts.jsonl")
print("speed:", p.stderr.strip().splitlines()[-1])

sys.exit(summary())
