"""checks.py: what the Python checkers under tests/ share. check() prints
"ok   WHAT" or "FAIL WHAT DETAIL" and counts; summary() prints the closing
line tests/run reads ("N passed, M failed") and returns the exit status.
A checker imports it with tests/ put first on sys.path. Also what more
than one checker reads back (safetensors files, ft-train's metrics) and
the small training setup the ft-train checkers share (hotel_setup)."""

import gzip
import json
import os
import shutil
import struct
import subprocess

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}"[:3000])
    return ok


def summary():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def st_read(path):
    """safetensors -> ({name: float32 array}, metadata)"""
    import numpy as np
    raw = open(path, "rb").read()
    n = struct.unpack_from("<Q", raw, 0)[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dt = {"F32": np.float32, "F16": np.float16}[t["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=dt).reshape(t["shape"]).astype(np.float32)
    return out, header.get("__metadata__", {})


def metrics(run_dir, drop=("tok_s", "elapsed_s")):
    """ft-train's metrics.jsonl, without the timing fields"""
    rows = []
    for line in open(os.path.join(run_dir, "metrics.jsonl")):
        j = json.loads(line)
        for k in drop:
            j.pop(k, None)
        rows.append(j)
    return rows


def run(*args, ok=True, **kw):
    """Run a command (arguments made strings), its output captured as text;
    with ok, a failure prints the end of its stderr and stops the checker.
    kw goes to subprocess.run."""
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if ok and p.returncode != 0:
        print(p.stderr[-3000:])
        raise SystemExit(f"FAIL command failed: {' '.join(map(str, args))}")
    return p


def steps(rows):
    """the step lines of ft-train's metrics (not the evaluations)"""
    return [r for r in rows if "loss" in r]


def hotel_setup(bin_dir, shared, dialogs, ntrain, seq_len, hidden=64, intermediate=128):
    """In the current directory: the first `dialogs` hotel dialogs rendered
    through the recipe's template, train.bin (the first ntrain samples) and
    val.bin (the rest) tokenized at seq_len with chinese-20k, and base/, a
    small random Llama with that tokenizer (ft-train init, seed 5). Returns
    the tokenizer's path."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

    spm = os.path.join(shared, "tokenizers", "chinese-20k.model")
    with gzip.open(os.path.join(shared, "data", "hotel", "dialogs.jsonl.gz"), "rt") as f:
        open("dialogs.jsonl", "w").writelines(next(f) for _ in range(dialogs))
    run(os.path.join(bin_dir, "ft-template"), "-t",
        os.path.join(root, "examples/crosswoz/hotel.jinja"), "-o", "samples.jsonl", "dialogs.jsonl")
    samples = open("samples.jsonl").readlines()
    open("train.jsonl", "w").writelines(samples[:ntrain])
    open("val.jsonl", "w").writelines(samples[ntrain:])
    for name in ("train", "val"):
        run(os.path.join(bin_dir, "ft-tokenize"), "-q", "-m", spm, "-L", seq_len, "-o",
            name + ".bin", name + ".jsonl")
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=hidden,
                  intermediate_size=intermediate, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=20000, max_position_embeddings=1024,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                  initializer_range=0.05, bos_token_id=1, eos_token_id=2)
    json.dump(config, open("config.json", "w"))
    run(os.path.join(bin_dir, "ft-train"), "init", "--config", "config.json", "-o", "base",
        "--seed", "5")
    shutil.copy(spm, "base/tokenizer.model")
    return spm
