#!/usr/bin/env python3
"""ft-train data parallel over MPI, on one machine, checked from the outside
with numpy alone:

  - 2 ranks of micro_batch x grad_accum end with the same adapter (LoRA, with
    dropout) and the same model (full) as 1 rank doing twice the
    micro-batches, within fp32 tolerance, with the same losses, gradient
    norms, trained tokens and validation losses, through a short last step
    of an epoch that leaves one rank without rows;
  - metrics, checkpoints and exports are written once, by rank 0;
  - ZeRO-1 (sharded AdamW moments) gives the same bits as whole moments on
    every rank, and the same checkpoint;
  - resume with the same rank count continues the same run; with another it
    is refused, naming both counts;
  - a rank that fails (bad input on one rank) or is killed (kill -9) ends the
    whole job with an error, within a time limit, instead of a hang;
  - SIGTERM to one rank stops all after the same step, with a checkpoint.

usage: distributed_check.py BIN SHARED WORKDIR MPIRUN...
"""
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

BIN, SHARED, WORK = sys.argv[1:4]
MPIRUN = sys.argv[4:]
FT_TRAIN = os.path.join(BIN, "ft-train")
# fp32: the ranks' gradients are summed in another order than one rank's
# accumulation, and Adam magnifies the rounding where a gradient is near 0
# (LoRA A at the second step, B being ~0): tensors agree to TOL in norm, every
# element to TOL_ELEM of its tensor's largest magnitude
TOL = 1e-5
TOL_ELEM = 1e-4
LIMIT = 60     # seconds a failing job may take to end
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, hotel_setup, metrics, st_read, summary  # noqa: E402  (tests/checks.py)


def run(*args, ok=True, timeout=600, env=None):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if ok and p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-3000:])
        raise SystemExit(f"FAIL command failed: {' '.join(map(str, args))}")
    return p


ENV = dict(os.environ, OMP_NUM_THREADS="1")
# Under `make sanitize`, OpenMPI's plugins (dlopen'd MCA components, closed
# again at MPI_Finalize, so no suppression can name them) leave allocations
# that LeakSanitizer reports at exit: leak detection is off for MPI ranks
# only (no effect on a build without sanitizers); AddressSanitizer's other
# checks and UBSan stay on, and single-process runs keep leak detection.
MPI_ENV = dict(ENV, ASAN_OPTIONS=":".join(
    filter(None, [os.environ.get("ASAN_OPTIONS"), "detect_leaks=0"])))


def mpi(n, *args, ok=True, timeout=600):
    return run(*MPIRUN, "-np", n, FT_TRAIN, *args, ok=ok, timeout=timeout, env=MPI_ENV)


def tensors(path):
    """a safetensors file's tensors, flat, in float64"""
    return {k: v.astype(np.float64).ravel() for k, v in st_read(path)[0].items()}


def max_rel(a, b):
    """the largest differences of two tensor sets: ||a-b|| / ||b|| per
    tensor, and per element relative to its tensor's largest magnitude"""
    if a.keys() != b.keys():
        return float("inf"), float("inf")
    norm = elem = 0.0
    for k in a:
        d = a[k] - b[k]
        norm = max(norm, float(np.linalg.norm(d) / max(np.linalg.norm(b[k]), 1e-30)))
        elem = max(elem, float(np.abs(d).max() / max(np.abs(b[k]).max(), 1e-30)))
    return norm, elem


def same_tensors(a, b, what):
    norm, elem = max_rel(tensors(a), tensors(b))
    check(f"{what} (rel diff {norm:.2g} in norm, {elem:.2g} per element)",
          norm <= TOL and elem <= TOL_ELEM)


def same_metrics(a, b, what, exact=False):
    ra, rb = metrics(a), metrics(b)
    ok = len(ra) == len(rb)
    worst = 0.0
    for x, y in zip(ra, rb):
        if x.keys() != y.keys():
            ok = False
            continue
        for k in x:
            if isinstance(x[k], float) and not exact:
                worst = max(worst, abs(x[k] - y[k]) / max(abs(y[k]), 1e-30))
            elif x[k] != y[k]:
                ok = False
    check(what, ok and worst <= TOL, f"{len(ra)} vs {len(rb)} lines, worst {worst:.3g}")
    return ra


os.chdir(WORK)
hotel_setup(BIN, SHARED, dialogs=26, ntrain=22, seq_len=128)   # 22 rows: a short last step

# 22 rows, 4 per step: 6 steps an epoch, the 6th of 2 rows (rank 1 idles)
COMMON = ["--model", "base", "--train", "train.bin", "--val", "val.bin", "--micro-batch", "1",
          "--max-steps", "8", "--eval-every", "4", "--save-every", "3", "--keep-last", "10",
          "--lr", "5e-3", "--warmup-steps", "2", "--threads", "1"]
LORA = COMMON + ["--lora-dropout", "0.1"]

# ---- LoRA: 2 ranks x 2 micro-batches = 1 rank x 4 ---------------------------
run(FT_TRAIN, "train", *LORA, "--grad-accum", "4", "-o", "one", env=ENV)
p = mpi(2, "train", *LORA, "--grad-accum", "2", "-o", "two")
rows = same_metrics("one", "two", "lora: 2 ranks give 1 rank's losses, norms, tokens, eval")
check("lora: 8 steps and 2 evaluations, each written once",
      [r["step"] for r in rows if "loss" in r] == list(range(1, 9)) and
      [r["step"] for r in rows if "eval_loss" in r] == [4, 8], str(rows))
same_tensors("one/adapter/adapter_model.safetensors", "two/adapter/adapter_model.safetensors",
             "lora: the same adapter")
check("lora: the same checkpoints", sorted(os.listdir("one/checkpoints")) ==
      sorted(os.listdir("two/checkpoints")), str(os.listdir("two/checkpoints")))
state = json.load(open("two/checkpoints/step-00000003/trainer_state.json"))
check("lora: the checkpoint records 2 ranks and 4 rows per step",
      state.get("world_size") == 2 and state.get("rows_per_step") == 4, str(state))
check("lora: rank 0 alone reports progress", p.stderr.count("step 8/8") == 1 and
      p.stderr.count("wrote two/adapter") == 1, p.stderr[-2000:])
check("lora: no stray files from other ranks",
      sorted(os.listdir("two")) == sorted(os.listdir("one")), str(os.listdir("two")))

# ---- full fine-tuning, micro_batch 2 ----------------------------------------
FULL = COMMON + ["--method", "full", "--lr", "1e-3", "--max-steps", "3", "--micro-batch", "2",
                 "--export-dtype", "f32", "--weight-decay", "0.01"]
run(FT_TRAIN, "train", *FULL, "--grad-accum", "2", "-o", "full1", env=ENV)
p = mpi(2, "train", *FULL, "--grad-accum", "1", "-o", "full2")
open("full2.err", "w").write(p.stderr)
same_metrics("full1", "full2", "full: 2 ranks give 1 rank's losses")
same_tensors("full1/model/model.safetensors", "full2/model/model.safetensors",
             "full: the same model")
same_tensors("full1/checkpoints/step-00000003/optimizer.safetensors",
             "full2/checkpoints/step-00000003/optimizer.safetensors",
             "full: the same AdamW moments")
# ZeRO-1 (the default) against every rank keeping all the moments: the same
# arithmetic on the same summed gradients, so the same bits
p = mpi(2, "train", *FULL, "--grad-accum", "1", "--zero-stage", "0", "-o", "full2z0")
check("full: ZeRO-1 halves each rank's AdamW moments and says so",
      "ZeRO-1" not in p.stderr and "ZeRO-1: each rank keeps the AdamW moments of 1317024 of "
      "2634048 parameters" in open("full2.err").read(), open("full2.err").read()[-1500:])
check("full: ZeRO-1 and whole moments on each rank give the same model, bit for bit",
      open("full2/model/model.safetensors", "rb").read() ==
      open("full2z0/model/model.safetensors", "rb").read())
check("full: ... and the same checkpointed moments, bit for bit",
      open("full2/checkpoints/step-00000003/optimizer.safetensors", "rb").read() ==
      open("full2z0/checkpoints/step-00000003/optimizer.safetensors", "rb").read())

# ---- resume -------------------------------------------------------------------
shutil.copytree("two", "two-r")
for c in ("step-00000006", "step-00000008"):
    shutil.rmtree(os.path.join("two-r", "checkpoints", c))
shutil.rmtree("two-r/adapter")
mpi(2, "train", *LORA, "--grad-accum", "2", "-o", "two-r", "--resume")
same_metrics("two", "two-r", "resume with 2 ranks: the same losses as the run not stopped",
             exact=True)
a, b = (tensors(f"{r}/adapter/adapter_model.safetensors") for r in ("two", "two-r"))
check("resume with 2 ranks: the same adapter, bit for bit",
      all(np.array_equal(a[k], b[k]) for k in a))
p = run(FT_TRAIN, "train", *LORA, "--grad-accum", "4", "-o", "two", "--resume", ok=False,
        env=ENV)
check("resume of a 2-rank run with 1 rank is refused",
      p.returncode == 1 and "written by a run of 2 ranks; this run has 1" in p.stderr,
      p.stderr[-1000:])
p = mpi(2, "train", *LORA, "--grad-accum", "4", "-o", "one", "--resume", ok=False)
check("resume of a 1-rank run with 2 ranks is refused",
      p.returncode != 0 and "written by a run of 1 rank; this run has 2" in p.stderr,
      p.stderr[-1000:])

# ---- failures end the job -------------------------------------------------------
t = time.time()
p = run(*MPIRUN, "-np", 1, FT_TRAIN, "train", *LORA, "--grad-accum", "2", "-o", "bad", ":",
        "-np", 1, FT_TRAIN, "train", *LORA, "--grad-accum", "2", "-o", "bad", "--train",
        "missing.bin", ok=False, timeout=LIMIT, env=MPI_ENV)
# rank 1 names a shard that is not there; whichever comes first, its open
# failing or rank 0 seeing that the ranks' recipes differ (slower under
# the sanitizers), the job ends with that message, not a hang
check("an error on rank 1 ends the job with its message",
      p.returncode != 0 and ("ft-train (rank 1): missing.bin" in p.stderr
                             or "differ from rank 0's" in p.stderr),
      f"exit {p.returncode} after {time.time() - t:.0f}s: {p.stderr[-1500:]}")

t = time.time()
p = run(*MPIRUN, "-np", 1, FT_TRAIN, "train", *LORA, "--grad-accum", "2", "-o", "bad2", ":",
        "-np", 1, FT_TRAIN, "train", *LORA, "--grad-accum", "2", "-o", "bad2", "--lr", "1e-3",
        ok=False, timeout=LIMIT, env=MPI_ENV)
check("ranks with different recipes are refused",
      p.returncode != 0 and "differ from rank 0's" in p.stderr, p.stderr[-1500:])

def signal_rank1(out, sig):
    """start a long 2-rank run, send sig to rank 1 once a step is logged;
    (whether rank 1 was found, whether the job ended in time, exit, stderr)"""
    proc = subprocess.Popen([*MPIRUN, "-np", "2", FT_TRAIN, "train", *LORA, "--grad-accum",
                             "2", "--max-steps", "100000", "--save-every", "0", "-o", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=MPI_ENV)
    metrics_path = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + LIMIT
    while time.time() < deadline and proc.poll() is None and (
            not os.path.exists(metrics_path) or os.path.getsize(metrics_path) == 0):
        time.sleep(0.2)
    victim = None
    for pid in run("pgrep", "-P", proc.pid, ok=False).stdout.split():
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=1" in env:
            victim = int(pid)
    if victim:
        os.kill(victim, sig)
    try:
        _, err = proc.communicate(timeout=LIMIT)
        ended = True
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        ended = False
    return victim is not None, ended, proc.returncode, err


found, ended, code, err = signal_rank1("killed", signal.SIGKILL)
check("kill -9 of rank 1 ends the job with an error, not a hang",
      found and ended and code != 0, f"found {found}, ended {ended}, exit {code}: {err[-1500:]}")

# SIGTERM to one rank: all stop after the same step, rank 0 checkpoints
found, ended, code, err = signal_rank1("termed", signal.SIGTERM)
cks = os.listdir("termed/checkpoints") if os.path.isdir("termed/checkpoints") else []
# (besides the checkpoint of the interruption, an evaluation before it may
# have written the best one: the interrupted step's is what must be there)
m = re.search(r"interrupted at step (\d+)", err)
check("SIGTERM to rank 1 stops every rank with a checkpoint (status 130)",
      found and ended and code == 130 and m is not None
      and f"step-{int(m.group(1)):08d}" in cks,
      f"found {found}, ended {ended}, exit {code}, {cks}: {err[-1500:]}")

sys.exit(summary())
