#!/usr/bin/env python3
"""Per-file data preparation (docs/data-parallel.md) against one run over
all files, on the recipe's hotel dialogs cut into 4 files.

The page's scripts (prep-one.sh, merge.sh, run-xargs.sh, prep.sbatch,
run-parallel.sh) and its cutting command are extracted from the page and run
as they are:
  - run-xargs.sh over the 4 files, prep.sbatch once per array task id with
    SLURM_* set by hand (and 2 threads per job), run-parallel.sh when GNU
    parallel is installed: every file they write is byte-identical;
  - prep-one.sh over the whole input is the one run. Against it:
    ft-augment (lexicon), ft-split and ft-template outputs concatenated in
    file order are byte-identical; the merged packed shards hold the same
    documents (ids, mask, flags) for every sample, the same documents,
    trained and non-padding tokens (read with the numpy recipe of
    docs/shard-format.md and with ft-shard info --json);
  - ft-tokenize --pad per file + ft-shard merge: the same rows, row for row;
  - --split-long: the same pieces per sample (ft-shard dump --format=jsonl);
  - ft-split record by record on the records dealt round-robin to 4 files
    (groups across files): the same output per record; --exact per file is
    the documented exception (groups land in two outputs);
  - ft-augment --dry-run (the requests a model backend sends, hence the
    cache keys): per file concatenated = one run;
  - ft-train: the evaluation loss of a tiny model over per-file packed
    shards merged = over one run's shard.

usage: perfile_check.py ROOT BIN SHARED WORKDIR; prints "N passed, N failed"
"""
import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

ROOT, BIN, SHARED, WORK = sys.argv[1:5]
DOC = os.path.join(ROOT, "docs", "data-parallel.md")
MODEL = os.path.join(SHARED, "tokenizers", "chinese-20k.model")
HOTEL = os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz")
EX = os.path.join(ROOT, "examples", "crosswoz")
NFILES = 4
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)


def finish():
    sys.exit(summary())


ENV = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get("PATH", ""), LC_ALL="C.UTF-8",
           TOKENIZER=MODEL, TEMPLATE=os.path.join(EX, "hotel.jinja"),
           LEXICON=os.path.join(EX, "lexicon.tsv"))
ENV.pop("JOBS", None)


def run(args, what, cwd=WORK, env=None, shell=False):
    p = subprocess.run(args, cwd=cwd, env=env or ENV, shell=shell, capture_output=True)
    if p.returncode != 0:
        check(what, False, f"exit {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}")
        return None
    return p.stdout


def read(path):
    with open(path, "rb") as f:
        return f.read()


def path(*p):
    return os.path.join(WORK, *p)


# ---- the scripts, from the page ----------------------------------------------------------
text = open(DOC, encoding="utf-8").read()
blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M)
scripts = {}
for b in blocks:
    m = re.match(r"#!/bin/bash\n# ([\w.-]+)[ :]", b)
    if m:
        scripts[m.group(1)] = b
want = ["prep-one.sh", "merge.sh", "run-xargs.sh", "run-parallel.sh", "prep.sbatch"]
if not check("the page has the scripts " + ", ".join(want), all(w in scripts for w in want),
             sorted(scripts)):
    finish()
for name, body in scripts.items():
    with open(path(name), "w", encoding="utf-8") as f:
        f.write(body)
    os.chmod(path(name), 0o755)
cut = [b for b in blocks if b.startswith("mkdir -p in\n")]
if not check("the page has the cutting command", len(cut) == 1):
    finish()

# ---- the input: cut into 4 files by the page's command; the one run's input -------------
with gzip.open(HOTEL, "rb") as f:
    hotel = f.read()
n_lines = hotel.count(b"\n")
with open(path("dialogs.jsonl"), "wb") as f:
    f.write(hotel)
per = -(-n_lines // NFILES)
cmd = cut[0].replace("zcat dialogs.jsonl.gz", "cat dialogs.jsonl").replace("-l 100000", f"-l {per}")
run(cmd, "cut the input with the page's command", shell=True)
parts = sorted(os.listdir(path("in")))
check(f"the input is cut into {NFILES} .jsonl.gz files",
      len(parts) == NFILES and all(re.fullmatch(r"part-\d{4}\.jsonl\.gz", p) for p in parts), parts)
names = [p.split(".")[0] for p in parts]
check("the files concatenated are the input",
      b"".join(gzip.decompress(read(path("in", p))) for p in parts) == hotel)
os.makedirs(path("one"))
shutil.copy(HOTEL, path("one", "dialogs.jsonl.gz"))


# ---- the runs ---------------------------------------------------------------------------
def tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(d, fn)
            out[os.path.relpath(p, root)] = read(p)
    return out


run(["./run-xargs.sh"], "run-xargs.sh", env=dict(ENV, WORK="work"))
check("run-xargs.sh made the merged index and concatenations",
      all(os.path.exists(path("work", f)) for f in
          ["train.json", "val.json", "dialogs.test.jsonl", "test.prompts.jsonl"]))

for i in range(NFILES):   # Slurm, by hand: one task per file, 2 threads each
    run(["bash", "prep.sbatch"], f"prep.sbatch task {i}",
        env=dict(ENV, WORK="work-slurm", SLURM_ARRAY_TASK_ID=str(i), SLURM_CPUS_PER_TASK="2"))
run(["./merge.sh"] + [os.path.join("in", p) for p in parts], "merge.sh after the array job",
    env=dict(ENV, WORK="work-slurm"))
a, b = tree(path("work")), tree(path("work-slurm"))
check(f"the Slurm array job (2 threads a job) writes the files of the xargs run, byte for "
      f"byte ({len(a)} files)", a == b and len(a) == 6 + 10 * NFILES,
      (sorted(set(a) ^ set(b)), [k for k in a if k in b and a[k] != b[k]]))

if shutil.which("parallel", path=ENV["PATH"]):
    run(["./run-parallel.sh"], "run-parallel.sh", env=dict(ENV, WORK="work-par"))
    check("GNU parallel writes the files of the xargs run", tree(path("work-par")) == a)
else:
    print("skip GNU parallel is not installed: run-parallel.sh not run")

# a failed job stops the run before the merge; a missing output stops the merge
bad = path("bad")
os.makedirs(os.path.join(bad, "in"))
for name in ["prep-one.sh", "merge.sh", "run-xargs.sh"]:
    shutil.copy(path(name), bad)
shutil.copy(path("in", parts[0]), os.path.join(bad, "in"))
with gzip.open(os.path.join(bad, "in", "part-9999.jsonl.gz"), "wb") as f:
    f.write(b'{"id": "x", "dialog": [\n')
p = subprocess.run(["./run-xargs.sh"], cwd=bad, env=dict(ENV, WORK="work"), capture_output=True)
check("run-xargs.sh: a failed job fails the run, and nothing is merged",
      p.returncode != 0 and b"part-9999.jsonl.gz:1" in p.stderr and
      not os.path.exists(os.path.join(bad, "work", "train.json")), (p.returncode, p.stderr))
p = subprocess.run(["./merge.sh"] + [os.path.join("in", x) for x in
                                     (parts[0], "part-9999.jsonl.gz")],
                   cwd=bad, env=dict(ENV, WORK="work"), capture_output=True)
check("merge.sh: a file whose job failed stops the merge",
      p.returncode != 0 and b"part-9999/train.bin" in p.stderr and
      not os.path.exists(os.path.join(bad, "work", "train.json")), (p.returncode, p.stderr))

run(["./prep-one.sh", "one/dialogs.jsonl.gz"], "prep-one.sh over all files",
    env=dict(ENV, WORK="work-one"))
ONE = path("work-one", "dialogs")


def cat(name):
    return b"".join(read(path("work", n, name)) for n in names)


# ---- augment, split, template: byte-identical ---------------------------------------------
for name, what in [("dialogs.aug.jsonl", "ft-augment --backend lexicon"),
                   ("dialogs.train.jsonl", "ft-split train"),
                   ("dialogs.val.jsonl", "ft-split val"),
                   ("dialogs.test.jsonl", "ft-split test"),
                   ("train.jsonl", "ft-template train samples"),
                   ("val.jsonl", "ft-template val samples"),
                   ("test.prompts.jsonl", "ft-template --mode prompt")]:
    one = read(os.path.join(ONE, name))
    check(f"{what}: per file concatenated == one run ({len(one.splitlines())} lines)",
          cat(name) == one and len(one) > 0)
for name in ["dialogs.train.jsonl", "dialogs.val.jsonl", "dialogs.test.jsonl",
             "test.prompts.jsonl"]:
    check(f"merge.sh's {name} == one run's", read(path("work", name)) == read(os.path.join(ONE, name)))
aug = read(os.path.join(ONE, "dialogs.aug.jsonl"))
check("the augmentation wrote variants", b'"aug_of":' in aug)

# ---- shards: read with the numpy recipe of docs/shard-format.md --------------------------
src = open(os.path.join(ROOT, "docs", "shard-format.md"), encoding="utf-8").read()
code = re.search(r"```python\n(.*?)```", src, re.S).group(1).split("\ns = read_shard(")[0]
ns = {}
exec(code, ns)
read_shard = ns["read_shard"]


def shard_list(p):
    """The shards of a shard or an index, in order."""
    if read(p)[:8] == b"FTSHARD\0":
        return [p]
    idx = json.loads(read(p))
    return [os.path.join(os.path.dirname(p), s["path"]) for s in idx["shards"]]


def load_set(p, offsets=None):
    """Rows, and documents with their global sample numbers: offsets[k] is
    added to the sample numbers of the k-th shard."""
    toks, masks, docs = [], [], []
    row0 = 0
    hdr = dict(rows=0, docs=0, trained=0, pad=0)
    for k, sp in enumerate(shard_list(p)):
        s = read_shard(sp)
        n = s["tokens"].shape[0]
        toks.append(np.asarray(s["tokens"]))
        masks.append(np.asarray(s["mask"]))
        for d in s["docs"]:
            r, a, ln = int(d["row"]), int(d["start"]), int(d["len"])
            docs.append(dict(sample=int(d["sample"]) + (offsets[k] if offsets else 0),
                             row=row0 + r, start=a, len=ln, flags=int(d["flags"]),
                             ids=s["tokens"][r, a:a + ln].tobytes(),
                             mask=s["mask"][r, a:a + ln].tobytes()))
        row0 += n
        for key, v in [("rows", n), ("docs", len(s["docs"])), ("trained", s["n_trained"]),
                       ("pad", s["n_pad"])]:
            hdr[key] += int(v)
        seq = s["seq_len"]
    tok = np.concatenate(toks) if toks else np.zeros((0, seq))
    return dict(tokens=tok, mask=np.concatenate(masks), dl=docs, seq_len=seq, **hdr)


def offsets(name):
    """Samples in each file before the k-th: the k-th shard's first global sample."""
    out, at = [], 0
    for n in names:
        out.append(at)
        at += read(path("work", n, name)).count(b"\n")
    return out


def by_sample(docs):
    out = collections.defaultdict(list)
    for d in docs:
        out[d["sample"]].append((d["ids"], d["mask"], d["flags"]))
    return dict(out)


def info(p):
    out = run(["ft-shard", "info", "--json", p], f"ft-shard info {p}")
    return json.loads(out.decode()) if out else {}


for part in ["train", "val"]:
    merged = load_set(path("work", f"{part}.json"), offsets(f"{part}.jsonl"))
    one = load_set(os.path.join(ONE, f"{part}.bin"))
    ms, os_ = by_sample(merged["dl"]), by_sample(one["dl"])
    check(f"--pack {part}: every sample has the same documents (ids, mask, flags) "
          f"({len(os_)} samples)", ms == os_ and len(os_) > 100,
          (len(ms), len(os_), [k for k in os_ if ms.get(k) != os_[k]][:5]))
    check(f"--pack {part}: the same multiset of documents",
          sorted(d[:2] for v in ms.values() for d in v) ==
          sorted(d[:2] for v in os_.values() for d in v))
    real = lambda s: s["rows"] * s["seq_len"] - s["pad"]  # noqa: E731
    check(f"--pack {part}: the same documents, trained and non-padding tokens "
          f"({one['docs']} docs, {one['trained']} trained, {real(one)} tokens)",
          (merged["docs"], merged["trained"], real(merged)) ==
          (one["docs"], one["trained"], real(one)))
    check(f"--pack {part}: the trained count is the masks' sum",
          int(merged["mask"].sum()) == merged["trained"] == int(one["mask"].sum()))
    im, io = info(path("work", f"{part}.json")), info(os.path.join(ONE, f"{part}.bin"))
    check(f"--pack {part}: ft-shard info agrees (docs, trained, tokens - pad)",
          [im.get(k) for k in ("docs", "trained")] + [im.get("tokens", 0) - im.get("pad", 0)] ==
          [io.get(k) for k in ("docs", "trained")] + [io.get("tokens", 0) - io.get("pad", 0)]
          and im.get("docs") == merged["docs"])
    print(f"     --pack {part}: per file {merged['rows']} rows, {merged['pad']} pad; "
          f"one run {one['rows']} rows, {one['pad']} pad")
    check(f"--pack {part}: the rows differ (packing is per run) and per file needs no fewer",
          merged["rows"] >= one["rows"])

# ---- --pad: row for row ---------------------------------------------------------------------
for n in names:
    run(["ft-tokenize", "-q", "-j", "2", "-m", MODEL, "-L", "2048", "--pad", "-o",
         path("work", n, "train.pad.bin"), path("work", n, "train.jsonl")], f"--pad {n}")
run(["ft-shard", "merge", "-o", path("work", "train.pad.json")] +
    [path("work", n, "train.pad.bin") for n in names], "ft-shard merge --pad shards")
run(["ft-tokenize", "-q", "-m", MODEL, "-L", "2048", "--pad", "-o", path("train.pad.bin"),
     os.path.join(ONE, "train.jsonl")], "--pad one run")
merged = load_set(path("work", "train.pad.json"), offsets("train.jsonl"))
one = load_set(path("train.pad.bin"))
check(f"--pad: the same token ids, row for row ({one['rows']} rows)",
      merged["tokens"].shape == one["tokens"].shape and
      np.array_equal(merged["tokens"], one["tokens"]))
check("--pad: the same masks, row for row", np.array_equal(merged["mask"], one["mask"]))
key = lambda d: (d["row"], d["start"], d["len"], d["flags"], d["sample"])  # noqa: E731
check("--pad: the same documents (row, start, len, flags; sample with the file's offset)",
      [key(d) for d in merged["dl"]] == [key(d) for d in one["dl"]])
check("--pad: the same header counts (rows, docs, trained, pad)",
      [merged[k] for k in ("rows", "docs", "trained", "pad")] ==
      [one[k] for k in ("rows", "docs", "trained", "pad")])
local = load_set(path("work", "train.pad.json"))
check("--pad: sample numbers restart at 0 in each shard",
      sum(d["sample"] == 0 for d in local["dl"]) == NFILES)

# ---- --split-long: the same pieces, from ft-shard dump --format=jsonl ----------------------
for n in names:
    run(["ft-tokenize", "-q", "-j", "1", "-m", MODEL, "-L", "512", "--split-long", "-o",
         path("work", n, "val.long.bin"), path("work", n, "val.jsonl")], f"--split-long {n}")
run(["ft-shard", "merge", "-o", path("work", "val.long.json")] +
    [path("work", n, "val.long.bin") for n in names], "ft-shard merge --split-long shards")
run(["ft-tokenize", "-q", "-m", MODEL, "-L", "512", "--split-long", "-o", path("val.long.bin"),
     os.path.join(ONE, "val.jsonl")], "--split-long one run")


def dumped(p, offs):
    out = run(["ft-shard", "dump", "-m", MODEL, "--format=jsonl", p], f"ft-shard dump {p}")
    docs = [json.loads(line) for line in (out or b"").decode().splitlines()]
    k = -1
    rows = [s["rows"] for s in json.loads(read(p)).get("shards", [])] if offs else []
    ends = np.cumsum(rows) if offs else []
    res = collections.defaultdict(list)
    for d in docs:
        if offs:
            k = int(np.searchsorted(ends, d["row"], side="right"))
        s = d["sample"] + (offs[k] if offs else 0)
        res[s].append((tuple(d["ids"]), tuple(d["mask"]), d["flags"],
                       "".join(g["text"] for g in d["segments"])))
    return dict(res)


dm, do = dumped(path("work", "val.long.json"), offsets("val.jsonl")), dumped(path("val.long.bin"), None)
pieces = sum(len(v) for v in do.values())
check(f"--split-long: every sample has the same pieces (ids, mask, flags, text; {pieces} "
      f"pieces of {len(do)} samples)", dm == do and pieces > len(do))

# ---- ft-split record by record, groups across files (round-robin) --------------------------
lines = aug.splitlines(keepends=True)
for k in range(NFILES):
    with open(path(f"rr-{k}.jsonl"), "wb") as f:
        f.writelines(lines[k::NFILES])


def split_map(exact, files, tag):
    """{id: output} and {group: set of outputs}, over per-file runs of files."""
    ids, groups = {}, collections.defaultdict(set)
    for k, fn in enumerate(files):
        outs = [path(f"{tag}-{k}.{o}") for o in ("train", "val", "test")]
        args = ["ft-split", "-q", "-r", "8:1:1", "-s", "0"] + (["--exact"] if exact else [])
        for o in outs:
            args += ["-o", o]
        run(args + [fn], f"ft-split {tag} {k}")
        for o in outs:
            for line in open(o, encoding="utf-8"):
                r = json.loads(line)
                which = o.rsplit(".", 1)[1]
                ids[r["id"]] = which
                groups[r.get("group", r["id"])].add(which)
    return ids, groups


rr = [path(f"rr-{k}.jsonl") for k in range(NFILES)]
all_aug = [os.path.join(ONE, "dialogs.aug.jsonl")]
ids_pf, groups_pf = split_map(False, rr, "rr")
ids_one, groups_one = split_map(False, all_aug, "one")
across = collections.defaultdict(set)
for k in range(NFILES):
    for line in lines[k::NFILES]:
        r = json.loads(line)
        across[r.get("group", r["id"])].add(k)
n_across = sum(len(v) > 1 for v in across.values())
check(f"ft-split: with {n_across} groups spread over several files, every record goes to "
      f"the output of one run ({len(ids_one)} records)",
      ids_pf == ids_one and len(ids_one) == len(lines) and n_across > 100)
check("ft-split: no group in two outputs", all(len(v) == 1 for v in groups_pf.values()))
xids_pf, xgroups_pf = split_map(True, rr, "xrr")
xids_one, xgroups_one = split_map(True, all_aug, "xone")
leaks = sum(len(v) > 1 for v in xgroups_pf.values())
print(f"     ft-split --exact per file: {leaks} groups in two outputs, "
      f"{sum(xids_pf[i] != xids_one[i] for i in xids_one)} records elsewhere than one run's")
check("ft-split --exact over all files: no group in two outputs",
      all(len(v) == 1 for v in xgroups_one.values()))
check("ft-split --exact per file is the documented exception: not one run's split, and "
      "groups across files can land in two outputs", xids_pf != xids_one and leaks > 0)

# ---- ft-augment with a model: the same requests (cache keys), no network ------------------
aug_args = ["ft-augment", "--dry-run", "-p", os.path.join(EX, "augment", "followup.jinja"),
            "-m", "x", "--system", open(os.path.join(EX, "augment", "system.txt"),
                                       encoding="utf-8").read(),
            "--prob", "0.5", "--json", "--append", "--into", "dialog", "--require", "role",
            "--temperature", "0.7", "-n", "2"]
per = b"".join(run(aug_args + [path("in", p)], f"ft-augment --dry-run {p}") or b"x" for p in parts)
one_req = run(aug_args + [path("one", "dialogs.jsonl.gz")], "ft-augment --dry-run one run")
check(f"ft-augment --dry-run: per file the requests of one run ({len((one_req or b'').splitlines())} "
      f"requests)", per == one_req and len(one_req.splitlines()) > 100)

# ---- ft-train: the evaluation loss over merged per-file shards = over one run's ----------
train_bin = os.path.join(BIN, "ft-train")
if not os.access(train_bin, os.X_OK):
    print("skip ft-train is not built: evaluation loss not compared")
    finish()
val = read(os.path.join(ONE, "val.jsonl")).splitlines(keepends=True)[:16]
small = []
for k in range(NFILES):
    p = path(f"small-{k}.jsonl")
    with open(p, "wb") as f:
        f.writelines(val[k * 4:(k + 1) * 4])
    small.append(path(f"small-{k}.bin"))
    run(["ft-tokenize", "-q", "-j", "1", "-m", MODEL, "-L", "1024", "-o", small[-1], p],
        f"small {k}")
with open(path("small.jsonl"), "wb") as f:
    f.writelines(val)
run(["ft-tokenize", "-q", "-m", MODEL, "-L", "1024", "-o", path("small.bin"),
     path("small.jsonl")], "small one run")
run(["ft-shard", "merge", "-o", path("small.json")] + small, "merge small")
sm, so = load_set(path("small.json")), load_set(path("small.bin"))
print(f"     ft-train eval set: per file {sm['rows']} rows, one run {so['rows']} rows")
run(["ft-train", "init", "--preset", "tiny", "--vocab-size", "20000", "--seed", "0", "-o",
     path("tiny")], "ft-train init")
losses = []
for v in ["small.bin", "small.json"]:
    out = path("run-" + v)
    run(["ft-train", "train", "--model", path("tiny"), "--train", path("small.bin"),
         "--val", path(v), "--output", out, "--max-steps", "1", "--lr", "0",
         "--lora-dropout", "0", "--threads", "2", "--log-every", "1"], f"ft-train eval on {v}")
    ev = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))
          if '"eval_loss"' in line] if os.path.exists(os.path.join(out, "metrics.jsonl")) else []
    losses.append((ev[-1]["eval_loss"], ev[-1]["eval_tokens"]) if ev else (None, None))
(l1, t1), (l2, t2) = losses
check(f"ft-train: the evaluation loss over the merged per-file shards equals one run's "
      f"({l1} over {t1} tokens; {l2} over {t2})",
      l1 is not None and l2 is not None and t1 == t2 == so["trained"]
      and sm["rows"] != so["rows"] and abs(l1 - l2) <= 1e-6 * abs(l1), (l1, l2, t1, t2))
finish()
