"""checks.py: what the Python checkers under tests/ share. check() prints
"ok   WHAT" or "FAIL WHAT DETAIL" and counts; summary() prints the closing
line tests/run reads ("N passed, M failed") and returns the exit status.
A checker imports it with tests/ put first on sys.path. Also what more
than one checker reads back: safetensors files and ft-train's metrics."""

import json
import os
import struct

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
