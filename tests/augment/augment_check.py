#!/usr/bin/env python3
"""End-to-end checks of ft-augment ($BIN/ft-augment) against the loopback mock
chat-completions server tests/augment/server.py (and, for replies that server
cannot give, a small stub server in this file).  Nothing leaves 127.0.0.1.

  - records in, variants out in input order; variant fields (id, group,
    aug_of, aug_model) and the reply content the mock server deterministically
    gives ("p" + sha256(canonical request)[:8] + ":" + last user text);
    -n/--api-seed, --system, message-array prompts, skipped variants;
  - byte-identical output for -c 1, 8 and 16 under latency and jitter;
  - --json (JSON: marker, a fenced array), --require, --append;
  - every fault kind retried to success; --retries 0 -> --rejects, exit 3;
    400/413/422 not retried; 401/403/404 fatal; finish_reason "length";
  - the API key never in stdout, stderr, outputs, rejects, cache or log;
  - cache: a rerun sends nothing; kill -9 and rerun: identical output and no
    request answered twice;
  - --prob/--seed, --select, --drop-original, --dry-run (sends nothing);
  - the lexicon backend (no network, deterministic, only contents change);
  - --rpm pacing without 429s; a 429's retry-after is honoured.

usage: augment_check.py   (env BIN, SHARED, FT_ROOT as set by tests/run)
Prints "N passed, M failed"; exit 1 on any failure.
"""
import copy
import gzip
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("FT_ROOT") or os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("BIN") or os.path.join(ROOT, "bin")
SHARED = os.environ.get("SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
AUG = os.path.join(BIN, "ft-augment")
SERVER = os.path.join(HERE, "server.py")
PY = sys.executable
HOTEL = os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz")
LEXICON = os.path.join(ROOT, "examples", "crosswoz", "lexicon.tsv")
MODEL = "gpt-aug-test"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)


# ---- helpers --------------------------------------------------------------------

TMP = tempfile.mkdtemp(prefix="ft-augment-check-")
procs = []


def path(*names):
    return os.path.join(TMP, *names)


def write(name, text):
    p = path(name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    return p


def write_jsonl(name, recs):
    return write(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs))


def start_server(*args, name="srv"):
    err = open(path(name + ".stderr"), "w")
    p = subprocess.Popen([PY, SERVER, "--port", "0", *map(str, args)],
                         stdout=subprocess.PIPE, stderr=err, text=True)
    procs.append(p)
    r, _, _ = select.select([p.stdout], [], [], 10)
    line = p.stdout.readline() if r else ""
    m = re.fullmatch(r"PORT (\d+)\n", line)
    if not m:
        p.kill()
        raise SystemExit(f"FAIL server did not print its port: {line!r}")
    return p, int(m.group(1))


def http_json(port, method, url, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, url, body=json.dumps(body).encode() if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        d = r.read()
    finally:
        c.close()
    if r.status != 200:
        raise RuntimeError(f"{method} {url}: {r.status} {d[:300]!r}")
    return json.loads(d)


def control(port, **kw):
    return http_json(port, "POST", "/control", kw)


def stats(port):
    """the server books a request just after its reply is sent, or after its
    delay when the client has gone (a timed-out "slow"): wait for that"""
    time.sleep(0.05)
    t0 = time.monotonic()
    while True:
        st = http_json(port, "GET", "/stats")
        if st["in_flight"] == 0 or time.monotonic() - t0 > 5:
            return st
        time.sleep(0.05)


def base_env(base_url=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OPENAI_") and k != "XDG_CACHE_HOME"}
    env["XDG_CACHE_HOME"] = path("xdg-cache")
    env["LC_ALL"] = "C.UTF-8"
    if base_url:
        env["OPENAI_BASE_URL"] = base_url
    return env


class Res:
    def __init__(self, rc, out, err, secs):
        self.rc, self.out, self.err, self.secs = rc, out, err, secs

    def lines(self):
        return self.out.decode("utf-8").splitlines()

    def __repr__(self):
        return (f"<exit {self.rc}, {self.secs:.2f}s, stdout {self.out[:600]!r}, "
                f"stderr {self.err[-1500:]!r}>")


def aug(args, base_url=None, env=None, stdin=None, timeout=60):
    e = base_env(base_url)
    if env:
        e.update(env)
    t0 = time.monotonic()
    try:
        p = subprocess.run([AUG, *map(str, args)], input=stdin, capture_output=True,
                           env=e, timeout=timeout, cwd=TMP)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as x:
        rc, out, err = "timeout", x.stdout or b"", x.stderr or b""
    return Res(rc, out, err, time.monotonic() - t0)


def canon(model, messages, temperature=None, top_p=None, max_tokens=None, seed=None):
    return json.dumps({"model": model, "messages": messages, "temperature": temperature,
                       "top_p": top_p, "max_tokens": max_tokens, "seed": seed},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def h8(messages, model=MODEL, **kw):
    return hashlib.sha256(canon(model, messages, **kw)).hexdigest()[:8]


def mock_content(messages, model=MODEL, **kw):
    """what server.py answers (its docstring's CONTENT), re-derived here"""
    last = ""
    for m in messages:
        if m["role"] == "user":
            last = m["content"]
    hh = h8(messages, model, **kw)
    if "JSON:" in last:
        return json.dumps({"text": last.replace("JSON:", "")[::-1], "v": hh},
                          ensure_ascii=False, separators=(",", ":"))
    return "p" + hh + ":" + last


def user(text):
    return [{"role": "user", "content": text}]


def typed(s):
    """JSON with 1 and 1.0 told apart (a copy must not turn 4.0 into 4)"""
    return json.loads(s, parse_float=lambda x: ("F", float(x)),
                      parse_int=lambda x: ("I", int(x)))


def typed_obj(o):
    return typed(json.dumps(o, ensure_ascii=False))


def set_path(obj, dotted, value, append=False):
    keys = dotted.split(".")
    cur = obj
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if append:
        tgt = cur[int(last)] if isinstance(cur, list) else cur[last]
        if isinstance(value, list):
            tgt.extend(value)
        else:
            tgt.append(value)
    elif isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value


def plain_id(i):
    return i[1] if isinstance(i, tuple) else i


def variant(src, k, into, value, model=MODEL, append=False):
    """the expected variant record (typed) of typed source src"""
    v = copy.deepcopy(src)
    set_path(v, into, typed_obj(value), append)
    v["id"] = f"{plain_id(src['id'])}-aug{k}"
    v["group"] = src.get("group", src["id"])
    v["aug_of"] = src["id"]
    v["aug_model"] = model
    return v


def diff_lines(got_lines, want):
    """None when the output lines equal the expected typed records, else a note"""
    got = []
    for i, ln in enumerate(got_lines):
        try:
            got.append(typed(ln))
        except ValueError:
            return f"line {i + 1} is not JSON: {ln[:200]!r}"
    if len(got) != len(want):
        ids = [plain_id(g.get("id")) if isinstance(g, dict) else g for g in got]
        wids = [plain_id(w.get("id")) for w in want]
        return f"{len(got)} lines, expected {len(want)}: ids {ids[:40]} vs {wids[:40]}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return f"line {i + 1}: got {json.dumps(g, ensure_ascii=False)[:700]} " \
                   f"expected {json.dumps(w, ensure_ascii=False)[:700]}"
    return None


def read_jsonl(p):
    with open(p, encoding="utf-8") as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def hotel(n, start=0):
    with gzip.open(HOTEL, "rt", encoding="utf-8") as f:
        out = []
        for i, ln in enumerate(f):
            if i >= start + n:
                break
            if i >= start:
                out.append(ln.rstrip("\n"))
    return out


def cache_entries(d):
    n = 0
    for root, _, files in os.walk(d):
        n += sum(1 for f in files if re.fullmatch(r"[0-9a-f]{64}", f))
    return n


def all_bytes_under(d):
    out = []
    for root, _, files in os.walk(d):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out.append((os.path.join(root, f), fh.read()))
    return out


def section(name):
    print(f"# {name}")


# ---- stub server for replies server.py does not give ------------------------------

STUB = {"mode": "ok", "reqs": [], "content": "stub reply", "model": "stub-answerer-v2",
        "status": 200}
STUB_LOCK = threading.Lock()


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        with STUB_LOCK:
            STUB["reqs"].append({"path": self.path, "headers": dict(self.headers.items()),
                                 "body": body})
            mode, content, model, status = STUB["mode"], STUB["content"], STUB["model"], \
                STUB["status"]
        if mode == "status":
            out = json.dumps({"error": {"message": f"stub says no ({status})",
                                        "type": "invalid_request_error", "code": None,
                                        "param": None}}).encode()
        else:
            out = json.dumps({
                "id": "chatcmpl-stub", "object": "chat.completion", "created": 1,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "length" if mode == "length" else "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}
            ).encode()
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def stub_set(**kw):
    with STUB_LOCK:
        STUB.update(kw)
        STUB["reqs"] = []


# ---- test data ----------------------------------------------------------------------

SIMPLE = [{"id": f"s{i:02d}", "text": f"hello world number {i}"} for i in range(1, 11)]
SIMPLE[3]["group"] = "g-four"
SIMPLE[5]["text"] = "你好，我想找一家有叫醒服务的酒店"
SIMPLE[7] = {"id": 8, "text": "integer id here", "score": 4.0, "n": [1, 2.5, {"x": None}]}


def main():
    if not os.access(AUG, os.X_OK):
        check(f"{AUG} exists and is executable", False)
        return
    srv, port = start_server("--log", path("server.log"), name="main")
    base = f"http://127.0.0.1:{port}/v1"

    stub = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    stub.daemon_threads = True
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    stub_base = f"http://127.0.0.1:{stub.server_address[1]}/v1"

    simple_in = write_jsonl("simple.jsonl", SIMPLE)
    simple_typed = [typed_obj(r) for r in SIMPLE]
    p_plain = write("plain.jinja", "Rewrite: {{ text }}\n")
    hotel20 = hotel(20)
    hotel_in = write("hotel20.jsonl", "".join(ln + "\n" for ln in hotel20))
    hotel_typed = [typed(ln) for ln in hotel20]
    hotel_plain = [json.loads(ln) for ln in hotel20]
    p_hotel = write("hotel.jinja", "改写这句话：{{ dialog[0].content }}\n")

    def run_case(name, fn):
        section(name)
        try:
            fn()
        except Exception:
            check(f"{name}: no exception in the test", False, traceback.format_exc())

    # ---- basic ------------------------------------------------------------------
    def basic():
        control(port, reset=True)
        cache = path("c-basic")
        out = path("basic.out")
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--cache", cache,
                 "-o", out, simple_in], base)
        check("basic: exit 0, -q: nothing on stderr, nothing on stdout with -o",
              r.rc == 0 and r.err == b"" and r.out == b"", r)
        want = []
        for s, pl in zip(simple_typed, SIMPLE):
            want.append(s)
            want.append(variant(s, 1, "text", mock_content(user("Rewrite: " + pl["text"]))))
        got = open(out, encoding="utf-8").read().splitlines() if os.path.exists(out) else []
        d = diff_lines(got, want)
        check("basic: originals, each followed by its variant (id -aug1, group, aug_of, "
              "aug_model, text = the server's reply)", d is None, d)
        st = stats(port)
        check("basic: 10 requests, all 200, each body answered once",
              st["requests"] == 10 and st["by_status"] == {"200": 10}
              and sorted(st["ok_by_body"].values()) == [1] * 10, st)
        check("basic: 10 cache entries", cache_entries(cache) == 10, cache_entries(cache))
        src_lines = open(simple_in, encoding="utf-8").read().splitlines()
        check("basic: originals written with their input bytes",
              got[0::2] == src_lines, (got[0::2][:3], src_lines[:3]))
        # records whose numbers must survive the copy
        v8 = [typed(ln) for ln in got if ln.startswith("{") and '"8-aug1"' in ln]
        check("basic: integer id -> id \"8-aug1\", aug_of 8 and group 8 (as in the source), "
              "4.0 stays 4.0", len(v8) == 1 and v8[0]["aug_of"] == ("I", 8)
              and v8[0]["group"] == ("I", 8) and v8[0]["score"] == ("F", 4.0), v8)
        # stdin and the same output
        r2 = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--cache", cache],
                 base, stdin=open(simple_in, "rb").read())
        check("basic: stdin -> stdout, same bytes as -o FILE",
              r2.rc == 0 and os.path.exists(out) and r2.out == open(out, "rb").read(), r2)
        # summary without -q
        control(port, reset=True)
        r3 = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache", simple_in], base)
        check("basic: without -q a summary on stderr naming the record counts",
              r3.rc == 0 and b"10" in r3.err and len(r3.err) > 0
              and r3.out == open(out, "rb").read(), r3)
        st = stats(port)
        check("basic: --no-cache sends every request again", st["requests"] == 10)
        m = re.search(rb"(\d+) requests \((\d+) retries\), (\d+) replies from the cache; "
                      rb"tokens: (\d+) prompt \+ (\d+) completion", r3.err)
        check("basic: the summary's requests and tokens are the server's",
              m is not None and [int(x) for x in m.groups()] ==
              [10, 0, 0, st["prompt_tokens"], st["completion_tokens"]], (r3.err, st))
        control(port, reset=True)
        cache3 = path("c-cost")
        r4 = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "--cache", cache3,
                  "--price-in", "1000", "--price-out", "20000", simple_in], base)
        st = stats(port)
        r5 = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "--cache", cache3,
                  "--price-in", "1000", "--price-out", "20000", simple_in], base)
        cost = (st["prompt_tokens"] * 1000 + st["completion_tokens"] * 20000) / 1e6
        m4 = re.search(rb"cost: \$([0-9.]+)", r4.err)
        m5 = re.search(rb"(\d+) replies from the cache.*cost: \$([0-9.]+) \(cache saved "
                       rb"\$([0-9.]+)\)", r5.err, re.S)
        check("basic: --price-in/--price-out: the cost of the server's token counts; a cached "
              "rerun costs 0 and saved as much",
              m4 is not None and abs(float(m4.group(1)) - cost) < 1e-3 and cost > 1
              and m5 is not None and int(m5.group(1)) == 10 and float(m5.group(2)) == 0
              and abs(float(m5.group(3)) - cost) < 1e-3, (r4.err, r5.err, cost))

    run_case("basic", basic)

    def hotel_case():
        control(port, reset=True)
        r = aug(["-q", "-p", p_hotel, "-m", MODEL, "--into", "dialog.0.content", "--no-cache",
                 hotel_in], base)
        want = []
        for s, pl in zip(hotel_typed, hotel_plain):
            want.append(s)
            want.append(variant(s, 1, "dialog.0.content",
                                mock_content(user("改写这句话：" + pl["dialog"][0]["content"]))))
        d = diff_lines(r.lines() if r.rc == 0 else [], want)
        check("hotel: --into dialog.0.content: only that string changes, floats kept", d is None,
              d or r)
        check("hotel: originals written with their input bytes (non-ASCII raw)",
              r.rc == 0 and r.lines()[0::2] == hotel20)
        # the .gz file itself, first records: same beginning
        gz = aug(["-q", "--dry-run", "-p", p_hotel, "-m", MODEL, "--into", "dialog.0.content",
                  "--select", "id == 'h0001' or id == 'h0002'", HOTEL], base, timeout=60)
        bodies = [json.loads(x) for x in gz.lines()] if gz.rc == 0 else []
        check("hotel: .gz input read transparently (dry run over the whole file, 2 selected)",
              gz.rc == 0 and len(bodies) == 2 and bodies[0]["messages"] ==
              user("改写这句话：" + hotel_plain[0]["dialog"][0]["content"]), gz)

    run_case("hotel", hotel_case)

    # ---- variants, seeds, prompts ------------------------------------------------
    def variants_case():
        control(port, reset=True)
        p = write("vars.jinja", "{{ variant }}/{{ variants }} {{ text }}")
        recs = SIMPLE[:3]
        inp = write_jsonl("three.jsonl", recs)
        r = aug(["-q", "-p", p, "-m", MODEL, "--into", "text", "-n", "2", "--api-seed", "100",
                 "--no-cache", inp], base)
        want = []
        for s in recs:
            want.append(typed_obj(s))
            for v in range(2):
                want.append(variant(typed_obj(s), v + 1, "text", mock_content(
                    user(f"{v}/2 {s['text']}"), seed=100 + v)))
        d = diff_lines(r.lines() if r.rc == 0 else [], want)
        check("-n 2 --api-seed 100: variant/variants in the prompt, seed 100+variant sent", d is None,
              d or r)
        # same prompt text for both variants: only the seed tells them apart
        control(port, reset=True)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "-n", "2", "--api-seed", "7",
                 "--no-cache", inp], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        texts = [o["text"] for o in outs if "aug_of" in o]
        h = [t[1:9] for t in texts]
        check("-n 2 --api-seed 7: 6 variants, two different H8 per record, as predicted",
              len(texts) == 6 and all(h[2 * i] != h[2 * i + 1] for i in range(3))
              and texts[0] == mock_content(user("Rewrite: " + recs[0]["text"]), seed=7)
              and texts[1] == mock_content(user("Rewrite: " + recs[0]["text"]), seed=8), texts)
        st = stats(port)
        check("-n 2 --api-seed 7: 6 distinct bodies sent", st["requests"] == 6
              and len(st["ok_by_body"]) == 6, st)

        # params: temperature/top_p/max_tokens enter the request
        control(port, reset=True)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--temperature", "0.7",
                 "--top-p", "0.9", "--max-tokens", "64", "--api-seed", "3", "--no-cache",
                 write_jsonl("one.jsonl", SIMPLE[:1])], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        want = mock_content(user("Rewrite: " + SIMPLE[0]["text"]), temperature=0.7, top_p=0.9,
                            max_tokens=64, seed=3)
        check("--temperature 0.7 --top-p 0.9 --max-tokens 64 --api-seed 3 reach the server",
              len(outs) == 2 and outs[1]["text"] == want, (outs, want, r))

        # --system, and a prompt that renders a message array
        control(port, reset=True)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--system", "Be brief.",
                 "--no-cache", write_jsonl("one.jsonl", SIMPLE[:1])], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        msgs = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Rewrite: " + SIMPLE[0]["text"]}]
        check("--system puts a system message first",
              len(outs) == 2 and outs[1]["text"] == mock_content(msgs), (outs, r))
        parr = write("array.jinja", '  [{"role": "system", "content": "sys {{ id }}"},\n'
                     ' {"role": "user", "content": {{ text|tojson }}},\n'
                     ' {"role": "assistant", "content": "ok"},\n'
                     ' {"role": "user", "content": "again: {{ id }}"}]\n\n')
        r = aug(["-q", "-p", parr, "-m", MODEL, "--into", "text", "--no-cache",
                 write_jsonl("one.jsonl", SIMPLE[:1])], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        msgs = [{"role": "system", "content": "sys s01"},
                {"role": "user", "content": SIMPLE[0]["text"]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "again: s01"}]
        check("a prompt that renders a JSON array is the message list",
              len(outs) == 2 and outs[1]["text"] == mock_content(msgs), (outs, r))

        # whitespace-only prompt: that variant is skipped, not an error
        control(port, reset=True)
        pskip = write("skip.jinja", "{% if 'number 2' in text or 'number 3' in text %} \n"
                      "{% else %}Rewrite: {{ text }}{% endif %}\n")
        r = aug(["-q", "-p", pskip, "-m", MODEL, "--into", "text", "--no-cache", inp], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("a whitespace-only prompt skips that variant: exit 0, originals kept, 1 variant",
              r.rc == 0 and [o["id"] for o in outs] == ["s01", "s01-aug1", "s02", "s03"]
              and stats(port)["requests"] == 1, (outs, r))

    run_case("variants", variants_case)

    # ---- concurrency: same bytes -------------------------------------------------------
    def concurrency_case():
        recs = [{"id": f"c{i:03d}", "text": f"concurrent record {i} " + "x" * (i % 7)}
                for i in range(30)]
        inp = write_jsonl("conc.jsonl", recs)
        outs = {}
        for c in (1, 8, 16):
            control(port, reset=True, latency=10, jitter=40)
            r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "-n", "2",
                     "--api-seed", "5", "--no-cache", "-c", c, inp], base)
            st = stats(port)
            outs[c] = r.out if r.rc == 0 else None
            check(f"-c {c}: exit 0, 60 requests, at most {c} in flight"
                  + (f", more than {c // 2} at once" if c > 1 else ""),
                  r.rc == 0 and st["requests"] == 60 and st["max_in_flight"] <= c
                  and (c == 1 or st["max_in_flight"] > c // 2), (r, st["max_in_flight"]))
        control(port, latency=0, jitter=0)
        want = []
        for s in recs:
            want.append(typed_obj(s))
            for v in range(2):
                # the rendered prompt is trimmed: no trailing space
                want.append(variant(typed_obj(s), v + 1, "text",
                                    mock_content(user("Rewrite: " + s["text"].strip()),
                                                 seed=5 + v)))
        d = diff_lines(outs[1].decode().splitlines() if outs[1] else [], want)
        check("-c 1: output as predicted", d is None, d)
        check("-c 1, 8, 16 with latency and jitter: byte-identical output",
              outs[1] is not None and outs[1] == outs[8] == outs[16])
        # a window smaller than the records: still in order
        control(port, reset=True, latency=5, jitter=20)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "-n", "2",
                 "--api-seed", "5", "--no-cache", "-c", 4, "--window", 4, inp], base)
        control(port, latency=0, jitter=0)
        check("--window 4 -c 4: same output", r.rc == 0 and r.out == outs[1], r)

    run_case("concurrency", concurrency_case)

    # ---- --json, --require, --append ------------------------------------------------------
    def json_case():
        control(port, reset=True)
        pj = write("json.jinja", "JSON:{{ text }}")
        recs = [{"id": "j1", "text": "abc def", "paras": ["orig"]},
                {"id": "j2", "text": "你好世界", "paras": []}]
        inp = write_jsonl("json.jsonl", recs)

        def exp(s):
            return json.loads(mock_content(user("JSON:" + s["text"])))
        r = aug(["-q", "-p", pj, "-m", MODEL, "--into", "para", "--json", "--require", "text",
                 "--require", "v", "--no-cache", inp], base)
        want = []
        for s in recs:
            want += [typed_obj(s), variant(typed_obj(s), 1, "para", exp(s))]
        check("--json: the reply is parsed; {text (reversed), v} set at --into para",
              r.rc == 0 and diff_lines(r.lines(), want) is None and
              exp(recs[0])["text"] == "fed cba", diff_lines(r.lines(), want) or r)
        r = aug(["-q", "-p", pj, "-m", MODEL, "--into", "text", "--no-cache", inp], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("without --json the JSON reply is kept as a string",
              len(outs) == 4 and outs[1]["text"] == mock_content(user("JSON:" + recs[0]["text"])),
              outs)
        r = aug(["-q", "-p", pj, "-m", MODEL, "--into", "paras", "--append", "--json",
                 "--no-cache", inp], base)
        want = []
        for s in recs:
            want += [typed_obj(s), variant(typed_obj(s), 1, "paras", exp(s), append=True)]
        d = diff_lines(r.lines(), want) if r.rc == 0 else r
        check("--append --json: the object is appended to the array", d is None, d)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "paras", "--append",
                 "--no-cache", inp], base)
        want = []
        for s in recs:
            want += [typed_obj(s), variant(typed_obj(s), 1, "paras",
                                           mock_content(user("Rewrite: " + s["text"])),
                                           append=True)]
        d = diff_lines(r.lines(), want) if r.rc == 0 else r
        check("--append: the reply string is appended", d is None, d)

        # --require a missing key: retried like a fault, then rejected
        control(port, reset=True)
        rej = path("json-rej.jsonl")
        r = aug(["-q", "-p", pj, "-m", MODEL, "--into", "para", "--json", "--require", "nope",
                 "--retries", "1", "--backoff", "0.01", "--rejects", rej, "--no-cache", inp], base)
        rj = read_jsonl(rej) if os.path.exists(rej) else []
        st = stats(port)
        check("--require nope: exit 3, originals only, 2 rejects with 2 attempts each",
              r.rc == 3 and [json.loads(x)["id"] for x in r.lines()] == ["j1", "j2"]
              and [(x["id"], x["variant"], x["attempts"]) for x in rj] ==
              [("j1", 1, 2), ("j2", 1, 2)] and st["requests"] == 4
              and sorted(st["by_body"].values()) == [2, 2], (r, rj, st))
        check("--require reject reason names the key", all("nope" in x.get("reason", "")
                                                             for x in rj) and len(rj) == 2, rj)

        # --json-mode enters the body
        r = aug(["--dry-run", "-q", "-p", pj, "-m", MODEL, "--into", "para", "--json",
                 "--json-mode", inp], base)
        bodies = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("--json-mode sends response_format json_object",
              len(bodies) == 2 and all(b.get("response_format") == {"type": "json_object"}
                                       for b in bodies), bodies or r)

        # fenced array reply (stub): elements appended; --require on every element
        stub_set(mode="ok", content='```json\n[{"a": 1, "b": "x"}, {"a": 2}]\n```')
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "paras", "--append", "--json",
                 "--require", "a", "--no-cache", inp], stub_base)
        want = []
        for s in recs:
            want += [typed_obj(s), variant(typed_obj(s), 1, "paras",
                                           [{"a": 1, "b": "x"}, {"a": 2}], model="stub-answerer-v2",
                                           append=True)]
        d = diff_lines(r.lines(), want) if r.rc == 0 else r
        check("--json: a ```json fence is removed; an array reply with --append appends its "
              "elements; aug_model = the model the reply names", d is None, d)
        stub_set(mode="ok", content='```json\n[{"a": 1, "b": "x"}, {"a": 2}]\n```')
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "paras", "--append", "--json",
                 "--require", "b", "--retries", "0", "--no-cache",
                 write_jsonl("one-j.jsonl", recs[:1])], stub_base)
        check("--require b on an array reply where one element lacks b: rejected (exit 3)",
              r.rc == 3 and [json.loads(x)["id"] for x in r.lines()] == ["j1"], r)
        stub_set(mode="ok", content="not json at all")
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "para", "--json",
                 "--retries", "2", "--backoff", "0.01", "--no-cache",
                 write_jsonl("one-j.jsonl", recs[:1])], stub_base)
        check("--json with a reply that is not JSON: 3 tries, then rejected (exit 3)",
              r.rc == 3 and len(STUB["reqs"]) == 3 and len(r.lines()) == 1, (r, len(STUB["reqs"])))

    run_case("json", json_case)

    # ---- faults -------------------------------------------------------------------------
    def faults_case():
        kinds = [("429", {}), ("500", {}), ("503", {}), ("slow", {"delay": 2.5}),
                 ("drop", {}), ("malformed", {}), ("partial", {}), ("empty", {}),
                 ("reset", {}), ("crash", {})]
        recs = [{"id": f"f{i:02d}", "text": f"frec{i:02d} faulty"} for i in range(1, 13)]
        inp = write_jsonl("faults.jsonl", recs)
        rules = []
        for i, (k, extra) in enumerate(kinds):
            rules.append(dict({"match": f"frec{i + 1:02d}", "fault": k,
                               "times": 1 if k in ("slow", "crash", "reset") else 2}, **extra))
        control(port, reset=True, faults=rules)
        out = path("faults.out")
        r = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache", "-c", 4,
                 "--retries", "5", "--backoff", "0.05", "--timeout", "1", "-o", out, inp], base)
        st = stats(port)
        m = re.search(rb"(\d+) requests \((\d+) retries\)", r.err)
        # the server saw 12 + 17 requests; a drop or reset on a reused connection may be
        # resent by libcurl itself (see below), which the summary cannot count
        resent = st["requests"] - int(m.group(1)) if m else -1
        check("faults: the summary counts every request it sent and the retries",
              m is not None and st["requests"] == 12 + 17
              and int(m.group(1)) == 12 + int(m.group(2))
              and 0 <= resent <= st["by_fault"].get("drop", 0) + st["by_fault"].get("reset", 0),
              (r.err, st["requests"], st["by_fault"]))
        ctl = http_json(port, "GET", "/control")
        want = []
        for s in recs:
            want += [typed_obj(s), variant(typed_obj(s), 1, "text",
                                           mock_content(user("Rewrite: " + s["text"])))]
        got = open(out, encoding="utf-8").read().splitlines() if os.path.exists(out) else []
        d = diff_lines(got, want)
        check("faults (429, 500, 503, slow, drop, malformed, partial, empty, reset, crash) "
              "with retries: exit 0, every record and variant, as predicted",
              r.rc == 0 and d is None, d or r)
        check("faults: every rule was hit as often as allowed",
              all(x["left"] == 0 for x in ctl["faults"]), ctl["faults"])
        check("faults: each body answered OK exactly once (12 bodies)",
              sorted(st["ok_by_body"].values()) == [1] * 12, st)
        want_fault = {k: (1 if k in ("slow", "crash", "reset") else 2) for k, _ in kinds}
        check("faults: the server saw each fault as many times as set",
              st["by_fault"] == want_fault, st["by_fault"])

        # --retries 0 means one try of ft-augment's own. When a kept-alive connection is
        # closed before any reply byte, libcurl resends the request once on a new
        # connection (the usual case is a server that closed an idle connection and never
        # saw the request); ft-augment cannot tell that resend apart, so the server may
        # see the dropped request twice, never more, and the others once.
        drecs = [{"id": f"d{i}", "text": f"dropme{i}"} for i in range(4)]
        dinp = write_jsonl("drop.jsonl", drecs)
        for kind in ("drop", "reset"):
            control(port, reset=True, faults=[{"match": "dropme2", "fault": kind, "times": -1}])
            r = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache", "-c", 1,
                     "--retries", "0", dinp], base)
            st = stats(port)
            m = re.search(rb"(\d+) requests \((\d+) retries\)", r.err)
            counts = sorted(st["by_body"].values())
            check(f"--retries 0 -c 1, '{kind}' on a reused connection: exit 3, the other "
                  "requests seen once, the dropped one at most twice (one libcurl resend), "
                  "the summary says 4 requests",
                  r.rc == 3 and counts in ([1] * 4, [1, 1, 1, 2])
                  and m is not None and int(m.group(1)) == 4, (r, st["by_body"]))

        # always failing, --retries 0: rejected at once, exit 3
        recs6 = [{"id": f"r{i}", "text": f"rej{i} text"} for i in range(1, 7)]
        inp6 = write_jsonl("rej.jsonl", recs6)
        pv = write("rejv.jinja", "{{ text }} v{{ variant }}")
        control(port, reset=True, faults=[
            {"match": "rej3 text v", "fault": "500", "times": -1},
            {"match": "rej5 text v1", "fault": "503", "times": -1}])
        rej = path("rej.rejects")
        out = path("rej.out")
        r = aug(["-q", "-p", pv, "-m", MODEL, "--into", "text", "-n", "2", "--api-seed", "1",
                 "--retries", "0", "--backoff", "0.01", "--rejects", rej, "-o", out,
                 "--no-cache", inp6], base)
        got = [json.loads(x) for x in open(out, encoding="utf-8")] if os.path.exists(out) else []
        rj = read_jsonl(rej) if os.path.exists(rej) else []
        st = stats(port)
        check("--retries 0, always 500/503: exit 3", r.rc == 3, r)
        ids = [g.get("id") for g in got]
        check("rejected variants are missing, every original and the other variants written",
              ids == ["r1", "r1-aug1", "r1-aug2", "r2", "r2-aug1", "r2-aug2", "r3",
                      "r4", "r4-aug1", "r4-aug2", "r5", "r5-aug1", "r6", "r6-aug1", "r6-aug2"]
              and all(isinstance(g, dict) and g for g in got), ids)
        check("variants that did arrive carry the server's reply",
              [g["text"] for g in got if g.get("id") == "r5-aug1"] ==
              [mock_content(user("rej5 text v0"), seed=1)], got)
        rjs = sorted(rj, key=lambda x: (x.get("id"), x.get("variant")))
        check("--rejects: {id, variant (1-based), file, line, attempts 1, reason, record}",
              [(x.get("id"), x.get("variant"), x.get("file"), x.get("line"), x.get("attempts"),
                x.get("record")) for x in rjs] ==
              [("r3", 1, inp6, 3, 1, recs6[2]), ("r3", 2, inp6, 3, 1, recs6[2]),
               ("r5", 2, inp6, 5, 1, recs6[4])], rj)
        check("--rejects reasons name the HTTP status (500, 503)",
              len(rjs) == 3 and "500" in rjs[0].get("reason", "")
              and "503" in rjs[2].get("reason", ""), rjs)
        check("--retries 0: each failing body tried once",
              st["requests"] == 12 and st["by_status"].get("500") == 2
              and st["by_status"].get("503") == 1, st)
        # accounted for: written + rejected = selected * n
        check("every variant accounted for: 9 written + 3 rejected = 6 records x 2",
              len([g for g in got if "aug_of" in g]) + len(rj) == 12)

        # --retries 2: three attempts
        control(port, reset=True, faults=[{"match": "rej3 text v0", "fault": "500",
                                           "times": -1}])
        r = aug(["-q", "-p", pv, "-m", MODEL, "--into", "text", "--api-seed", "1",
                 "--retries", "2", "--backoff", "0.01", "--rejects", rej, "--no-cache", inp6],
                base)
        rj = read_jsonl(rej) if os.path.exists(rej) else []
        st = stats(port)
        check("--retries 2: rejected after 3 attempts (reject says 3; server saw 3)",
              r.rc == 3 and [(x["id"], x["attempts"]) for x in rj] == [("r3", 3)]
              and st["by_status"].get("500") == 3 and st["requests"] == 8, (r, rj, st))
        # no --rejects: reported on stderr
        control(port, reset=True, faults=[{"match": "rej3 text v0", "fault": "500",
                                           "times": -1}])
        r = aug(["-q", "-p", pv, "-m", MODEL, "--into", "text", "--api-seed", "1",
                 "--retries", "0", "--no-cache", inp6], base)
        check("without --rejects a reject is reported on stderr naming the record (exit 3)",
              r.rc == 3 and b"r3" in r.err and len(r.lines()) == 11, r)

        # 400 / 413 / 422: not retried
        for code in (400, 413, 422):
            stub_set(mode="status", status=code)
            r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--retries", "3",
                     "--backoff", "0.01", "--rejects", rej, "--no-cache",
                     write_jsonl("one.jsonl", SIMPLE[:1])], stub_base)
            rj = read_jsonl(rej) if os.path.exists(rej) else []
            check(f"HTTP {code}: not retried (1 request), rejected, exit 3",
                  r.rc == 3 and len(STUB["reqs"]) == 1 and len(rj) == 1
                  and rj[0].get("attempts") == 1 and str(code) in rj[0].get("reason", "")
                  and len(r.lines()) == 1, (r, len(STUB["reqs"]), rj))
        # 403: fatal
        stub_set(mode="status", status=403)
        out = path("fatal.out")
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "-c", "1", "--no-cache",
                 "-o", out, simple_in], stub_base)
        check("HTTP 403: fatal, exit 1, 'ft-augment: <url>: HTTP 403: <excerpt>', no output file",
              r.rc == 1 and (f"ft-augment: {stub_base}/chat/completions: HTTP 403: stub says no"
                             ).encode() in r.err and not os.path.exists(out)
              and len(STUB["reqs"]) == 1, (r, len(STUB["reqs"])))
        # 404 from the mock server (wrong path)
        control(port, reset=True)
        bad = f"http://127.0.0.1:{port}/v2"
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "-c", "1", "--no-cache",
                 simple_in], bad)
        check("HTTP 404: fatal, exit 1, names the URL",
              r.rc == 1 and f"ft-augment: {bad}/chat/completions: HTTP 404".encode() in r.err,
              r)
        # finish_reason length: a failed reply
        stub_set(mode="length", content="cut off")
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--retries", "1",
                 "--backoff", "0.01", "--rejects", rej, "--no-cache",
                 write_jsonl("one.jsonl", SIMPLE[:1])], stub_base)
        rj = read_jsonl(rej) if os.path.exists(rej) else []
        check("finish_reason length: retried, then rejected (2 requests, exit 3)",
              r.rc == 3 and len(STUB["reqs"]) == 2 and len(rj) == 1
              and rj[0].get("attempts") == 2, (r, rj))
        # connection refused
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--retries", "1",
                 "--backoff", "0.01", "--rejects", rej, "--no-cache",
                 write_jsonl("one.jsonl", SIMPLE[:1])], "http://127.0.0.1:9/v1")
        rj = read_jsonl(rej) if os.path.exists(rej) else []
        check("connection refused: retried, then rejected (exit 3, attempts 2)",
              r.rc == 3 and len(rj) == 1 and rj[0].get("attempts") == 2
              and len(r.lines()) == 1, (r, rj))

    run_case("faults", faults_case)

    # ---- the request itself (stub sees it) ---------------------------------------------
    def wire_case():
        stub_set(mode="ok", content="fine")
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--temperature", "0.5",
                 "--api-seed", "9", "--no-cache", write_jsonl("one.jsonl", SIMPLE[:1])], stub_base)
        req = STUB["reqs"][0] if STUB["reqs"] else {"headers": {}, "body": b"{}", "path": ""}
        body = json.loads(req["body"])
        hdr = {k.lower(): v for k, v in req["headers"].items()}
        check("request: POST /v1/chat/completions, JSON body with model, messages, "
              "temperature, seed; no Authorization header without a key",
              r.rc == 0 and req["path"] == "/v1/chat/completions" and body.get("model") == MODEL
              and body.get("messages") == user("Rewrite: " + SIMPLE[0]["text"])
              and body.get("temperature") == 0.5 and body.get("seed") == 9
              and "authorization" not in hdr
              and hdr.get("content-type", "").startswith("application/json"), (r, req))
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("aug_model is the model named in the reply", len(outs) == 2 and
              outs[1]["aug_model"] == "stub-answerer-v2" and outs[1]["text"] == "fine", outs)
        # dry run prints the same body
        stub_set(mode="ok")
        r2 = aug(["-q", "--dry-run", "-p", p_plain, "-m", MODEL, "--into", "text",
                  "--temperature", "0.5", "--api-seed", "9",
                  write_jsonl("one.jsonl", SIMPLE[:1])], stub_base)
        check("--dry-run prints exactly the body that would be sent, sends nothing",
              r2.rc == 0 and r2.lines() == [req["body"].decode()] and STUB["reqs"] == [],
              (r2, req["body"]))

    run_case("wire", wire_case)

    # ---- the API key ----------------------------------------------------------------------
    def key_case():
        good = "sk-test-SECRET-7d1c9e3b5a-good"
        wrong = "sk-test-SECRET-00ff11ee-wrong"
        kf = write("server.key", good + "\n")
        slog = path("keyserver.log")
        ks, kport = start_server("--key-file", kf, "--log", slog, name="keysrv")
        kbase = f"http://127.0.0.1:{kport}/v1"
        cache = path("c-key")
        files = []
        runs = []
        caches = []
        okfile = write("client-good.key", good + "\n")
        badfile = write("client-wrong.key", wrong + "\n")
        for label, extra, env, want in [
            ("OPENAI_API_KEY right", [], {"OPENAI_API_KEY": good}, 0),
            ("--api-key-file right", ["--api-key-file", okfile], {}, 0),
            ("OPENAI_API_KEY wrong", [], {"OPENAI_API_KEY": wrong}, 1),
            ("--api-key-file wrong", ["--api-key-file", badfile], {"OPENAI_API_KEY": good}, 1),
            ("no key", [], {}, 1)]:
            out = path(f"key-{len(runs)}.out")
            rej = path(f"key-{len(runs)}.rej")
            files += [out, rej]
            control(kport, reset=True)
            cdir = cache if want == 0 else path(f"c-key-bad{len(runs)}")
            caches.append(cdir)
            r = aug(["-p", p_plain, "-m", MODEL, "--into", "text", "-c", "1", "--cache", cdir,
                     "--rejects", rej, "-o", out, "--retries", "2", "--backoff", "0.01",
                     simple_in, *extra], kbase, env=env)
            st = stats(kport)
            runs.append(r)
            if want == 0:
                check(f"key, {label}: exit 0, records written",
                      r.rc == 0 and os.path.exists(out) and
                      len(open(out).read().splitlines()) == 20, r)
            else:
                check(f"key, {label}: exit 1 after one request (401 is not retried), "
                      "'HTTP 401' on stderr, no output file",
                      r.rc == 1 and st["requests"] == 1 and st["by_status"] == {"401": 1}
                      and f"ft-augment: {kbase}/chat/completions: HTTP 401".encode() in r.err
                      and not os.path.exists(out), (r, st))
            # the first good run fills the cache; the second sends nothing
            if label == "--api-key-file right":
                check("key: a cached run with another key source sends nothing",
                      st["requests"] == 0, st)
        leaks = []
        for needle in (good, wrong, "SECRET", "7d1c9e3b5a", "00ff11ee"):
            nb = needle.encode()
            for i, r in enumerate(runs):
                if nb in r.out or nb in r.err:
                    leaks.append((needle, f"run {i} stdout/stderr"))
            for f in files + [slog, path("keysrv.stderr")]:
                if os.path.exists(f) and nb in open(f, "rb").read():
                    leaks.append((needle, f))
            for cdir in caches:
                for f, data in all_bytes_under(cdir):
                    if nb in data:
                        leaks.append((needle, f))
        check("key: never in stdout, stderr, outputs, rejects, cache or server log",
              leaks == [] and cache_entries(cache) == 10, (leaks, cache_entries(cache)))
        ks.terminate()

    run_case("key", key_case)

    # ---- cache and resume ---------------------------------------------------------------
    def cache_case():
        control(port, reset=True)
        cache = path("c-cache")
        args = ["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--cache", cache, simple_in]
        r1 = aug(args, base)
        n1 = stats(port)["requests"]
        r2 = aug(args, base)
        st = stats(port)
        check("cache: the first run sends 10, a rerun sends nothing and writes the same bytes",
              r1.rc == 0 and r2.rc == 0 and n1 == 10 and st["requests"] == 10
              and r1.out == r2.out and len(r1.lines()) == 20, (r1, r2, st))
        # a damaged entry is not trusted: warned about, asked again, replaced
        ents = sorted(os.path.join(rt, f) for rt, _, fs in os.walk(cache) for f in fs
                      if re.fullmatch(r"[0-9a-f]{64}", f))
        with open(ents[0], "ab") as f:
            f.write(b"garbage")
        rd = aug(args, base)
        n_d = stats(port)["requests"]
        rd2 = aug(args, base)
        check("cache: a damaged entry is named on stderr, asked again (1 request) and "
              "replaced (then 0); same output",
              rd.rc == 0 and rd.out == r1.out and os.path.basename(ents[0]).encode() in rd.err
              and n_d == 11 and rd2.rc == 0 and rd2.out == r1.out and rd2.err == b""
              and stats(port)["requests"] == 11, (rd, n_d))
        control(port, reset=True)
        r3 = aug(args[:-1] + ["--temperature", "0.3", simple_in], base)
        check("cache: another --temperature is another key (10 new requests)",
              r3.rc == 0 and stats(port)["requests"] == 10)
        r4 = aug(["-q", "-p", p_plain, "-m", MODEL + "-b", "--into", "text", "--cache", cache,
                  simple_in], base)
        check("cache: another model is another key (10 new requests)",
              r4.rc == 0 and stats(port)["requests"] == 20)
        r5 = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "para", "--cache", cache,
                  simple_in], base)
        check("cache: another --into reuses the cached replies (same request)",
              r5.rc == 0 and stats(port)["requests"] == 20 and
              [json.loads(x).get("para") for x in r5.lines()][1::2] ==
              [json.loads(x)["text"] for x in r1.lines()][1::2], r5)
        # XDG_CACHE_HOME default
        control(port, reset=True)
        xdg = path("xdg-default")
        a6 = ["-q", "-p", p_plain, "-m", MODEL, "--into", "text", simple_in]
        r6 = aug(a6, base, env={"XDG_CACHE_HOME": xdg})
        r7 = aug(a6, base, env={"XDG_CACHE_HOME": xdg})
        check("cache: default under $XDG_CACHE_HOME/ft/augment, used by a rerun",
              r6.rc == 0 and r7.rc == 0 and r6.out == r7.out and
              cache_entries(os.path.join(xdg, "ft", "augment")) == 10
              and stats(port)["requests"] == 10, (r6, r7))

        # kill -9 mid-run, rerun
        recs = [{"id": f"k{i:02d}", "text": f"resume me {i}"} for i in range(24)]
        inp = write_jsonl("kill.jsonl", recs)
        pv = write("kill.jinja", "{{ text }} (variant {{ variant }})")
        control(port, reset=True)
        ref = aug(["-q", "-p", pv, "-m", MODEL, "--into", "text", "--no-cache", inp], base)
        control(port, reset=True, latency=100)
        kc = path("c-kill")
        out = path("kill.out")
        kargs = ["-q", "-p", pv, "-m", MODEL, "--into", "text", "-c", "1", "--cache", kc,
                 "-o", out, inp]
        p = subprocess.Popen([AUG, *kargs], env=base_env(base), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        # kill with one request in flight on the server, between two cached replies (a
        # reply received but not yet stored would rightly be asked again)
        while time.monotonic() - t0 < 10 and p.poll() is None:
            n = cache_entries(kc)
            if n >= 6:
                time.sleep(0.03)
                if cache_entries(kc) == n:
                    break
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        at_kill = cache_entries(kc)
        check("kill -9: the run was killed midway (some but not all replies cached), "
              "no output file", 0 < at_kill < 24 and not os.path.exists(out), at_kill)
        time.sleep(0.4)  # requests in flight at the kill finish (or abort) on the server
        before = stats(port)["requests"]
        control(port, latency=0)
        r = aug(kargs, base)
        st = stats(port)
        check("kill -9, rerun: exit 0 and output identical to an uninterrupted run",
              r.rc == 0 and ref.rc == 0 and os.path.exists(out)
              and open(out, "rb").read() == ref.out and len(ref.lines()) == 48, (r, ref))
        check("kill -9, rerun: the rerun sends only what was not cached",
              st["requests"] - before == 24 - at_kill, (st["requests"], before, at_kill))
        dup = [c for c in st["ok_by_body"].values() if c > 1]
        check("kill -9, rerun: no request answered OK twice across both runs "
              "(24 bodies, each once)", len(st["ok_by_body"]) == 24 and dup == [],
              (len(st["ok_by_body"]), dup))
        leftovers = [f for f in os.listdir(TMP) if f.startswith("kill.out") and f != "kill.out"]
        check("kill -9, rerun: no stray temporary output file left beside -o",
              leftovers == [], leftovers)

    run_case("cache", cache_case)

    # ---- selection --------------------------------------------------------------------
    def select_case():
        control(port, reset=True)
        recs = [{"id": f"p{i:04d}", "text": "t"} for i in range(400)]
        inp = write_jsonl("prob.jsonl", recs)
        pid = write("id.jinja", "{{ id }}")

        def chosen(*extra):
            r = aug(["-q", "--dry-run", "-p", pid, "-m", MODEL, "--into", "text", *extra, inp],
                    base)
            if r.rc != 0:
                return None, r
            return [json.loads(x)["messages"][-1]["content"] for x in r.lines()], r
        a, ra = chosen("--prob", "0.3", "--seed", "1")
        b, _ = chosen("--prob", "0.3", "--seed", "1")
        c, _ = chosen("--prob", "0.3", "--seed", "2")
        big, _ = chosen("--prob", "0.6", "--seed", "1")
        none_, _ = chosen("--prob", "0")
        all_, _ = chosen("--prob", "1")
        check("--prob 0.3 --seed 1: about 30% of 400 (80..160) selected, in input order",
              a is not None and 80 <= len(a) <= 160 and a == sorted(a), (len(a or []), ra))
        check("--prob 0.3: same seed, same set", a is not None and a == b)
        check("--prob 0.3: another seed, another set", a is not None and c is not None
              and set(a) != set(c) and 80 <= len(c) <= 160, (len(c or []),))
        check("--prob 0.6 selects a superset of --prob 0.3 (same seed)",
              a is not None and big is not None and set(a) < set(big)
              and 190 <= len(big) <= 290, len(big or []))
        check("--prob 0 selects none, --prob 1 all", none_ == [] and all_ is not None
              and len(all_) == 400, (none_, len(all_ or [])))
        check("--dry-run sends nothing", stats(port)["requests"] == 0)
        # the real run augments the same records as the dry run
        r = aug(["-q", "-p", pid, "-m", MODEL, "--into", "text", "--prob", "0.3", "--seed", "1",
                 "--drop-original", "--no-cache", "-c", "16", inp], base)
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("--prob with a real run and --drop-original: only the variants of the dry "
              "run's selection (spec: --drop-original writes only variants)", a is not None and [o.get("aug_of") for o in outs] == a
              and all(o["id"] == o["aug_of"] + "-aug1" and o["text"] ==
                      mock_content(user(o["aug_of"])) for o in outs), r)

        # --select on hotel dialogs
        control(port, reset=True)
        h300 = hotel(300, start=3000)
        h = [json.loads(x) for x in h300]
        hin = write("hotel300.jsonl", "".join(x + "\n" for x in h300))
        for expr, pred in [("source == 'named'", lambda d: d["source"] == "named"),
                           ("dialog|length > 6", lambda d: len(d["dialog"]) > 6),
                           ("record.id.endswith('_') and dialog|length == 4",
                            lambda d: d["id"].endswith("_") and len(d["dialog"]) == 4)]:
            r = aug(["-q", "--dry-run", "-p", pid, "-m", MODEL, "--into", "x", "--select", expr,
                     hin], base)
            got = [json.loads(x)["messages"][-1]["content"] for x in r.lines()] if r.rc == 0 else None
            want = [d["id"] for d in h if pred(d)]
            check(f"--select \"{expr}\": exactly the {len(want)} matching records",
                  got == want and len(want) > 0, (got if got is None else len(got), r))
        check("--select dry runs send nothing", stats(port)["requests"] == 0)

        # dry run with -n 2: one body per variant; no cache written
        dc = path("c-dry")
        r = aug(["-q", "--dry-run", "-p", p_plain, "-m", MODEL, "--into", "text", "-n", "2",
                 "--api-seed", "4", "--cache", dc, simple_in], base)
        bodies = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        check("--dry-run -n 2: 20 bodies, model, messages and seed 4/5 per record, no cache",
              len(bodies) == 20 and all(b["model"] == MODEL for b in bodies)
              and [b.get("seed") for b in bodies[:4]] == [4, 5, 4, 5]
              and bodies[2]["messages"] == user("Rewrite: " + SIMPLE[1]["text"])
              and cache_entries(dc) == 0 and stats(port)["requests"] == 0, (r, bodies[:3]))

    run_case("select", select_case)

    # ---- lexicon backend ---------------------------------------------------------------
    def lexicon_case():
        control(port, reset=True)
        lines = hotel(60)
        src = [typed(x) for x in lines]
        plain = [json.loads(x) for x in lines]
        hin = write("hotel60.jsonl", "".join(x + "\n" for x in lines))
        phrases = []
        for ln in open(LEXICON, encoding="utf-8"):
            if ln.strip() and not ln.startswith("#"):
                phrases += [p for p in ln.rstrip("\n").split("\t") if p]

        def lex(*extra, into="dialog.*.content"):
            return aug(["-q", "--backend", "lexicon", "--lexicon", LEXICON,
                        "--into", into, *extra, hin], base)
        r1 = lex("-n", "2", "--seed", "1")
        r2 = lex("-n", "2", "--seed", "1", "-c", "1")
        r3 = lex("-n", "2", "--seed", "2")
        check("lexicon: exit 0, deterministic (same bytes twice, any -c)",
              r1.rc == 0 and r1.out == r2.out and len(r1.out) > 0, (r1, r2))
        check("lexicon: another --seed gives another output", r3.rc == 0 and r3.out != r1.out)
        check("lexicon: no request reaches the server", stats(port)["requests"] == 0)
        outs = [typed(x) for x in r1.lines()] if r1.rc == 0 else []
        origs = [o for o in outs if "aug_of" not in o]
        vars_ = [o for o in outs if "aug_of" in o]
        check("lexicon: every original written in order",
              origs == src, (len(origs), len(src)))
        bad = []
        byid = {plain_id(s["id"]): s for s in src}
        pos = 0
        for o in outs:
            if "aug_of" not in o:
                continue
            s = byid.get(o["aug_of"])
            if s is None or o["aug_model"] != "lexicon" or \
                    not re.fullmatch(re.escape(o["aug_of"]) + r"-aug[12]", o["id"]) or \
                    o["group"] != s["id"] or len(o["dialog"]) != len(s["dialog"]):
                bad.append(("fields", o.get("id")))
                continue
            changed = 0
            for tv, ts in zip(o["dialog"], s["dialog"]):
                if {k: v for k, v in tv.items() if k != "content"} != \
                        {k: v for k, v in ts.items() if k != "content"}:
                    bad.append(("non-content changed", o["id"], ts.get("role")))
                if ("content" in tv) != ("content" in ts):
                    bad.append(("content key", o["id"]))
                elif "content" in tv and tv["content"] != ts["content"]:
                    changed += 1
                    if not any(p in tv["content"] for p in phrases):
                        bad.append(("changed without a lexicon phrase", o["id"]))
            if changed == 0:
                bad.append(("unchanged variant written", o["id"]))
            # hotel names in the assistant's reply survive
            names = [rec["name"] for t in s["dialog"] if t["role"] == "return"
                     for rec in t["records"]]
            for tv, ts in zip(o["dialog"], s["dialog"]):
                for nm in names:
                    if "content" in ts and nm in ts["content"] and nm not in tv["content"]:
                        bad.append(("hotel name lost", o["id"], nm))
        check("lexicon: variants have aug_model lexicon, id -augK, group; search arguments, "
              "results and roles unchanged; only content strings differ, each at least once",
              bad == [] and len(vars_) > 5, (bad[:10], len(vars_)))
        # order: each record's variants right after it, aug1 before aug2
        order_ok = True
        cur = None
        last_k = 0
        for o in outs:
            if "aug_of" not in o:
                cur, last_k = plain_id(o["id"]), 0
            else:
                k = int(o["id"].rsplit("aug", 1)[1])
                if o["aug_of"] != cur or k <= last_k:
                    order_ok = False
                last_k = k
        check("lexicon: variants follow their record, in variant order", order_ok)

        # p = 1: a variant exactly for records whose contents hold a lexicon phrase
        r = lex("--lexicon-prob", "1", "--seed", "3")
        outs = [json.loads(x) for x in r.lines()] if r.rc == 0 else []
        got = [o["aug_of"] for o in outs if "aug_of" in o]
        want = [d["id"] for d in plain if any(p in t.get("content", "") for t in d["dialog"]
                                               for p in phrases)]
        check("lexicon --lexicon-prob 1: a variant for exactly the records holding a phrase",
              r.rc == 0 and got == want and len(want) > 0, (got, want, r))
        r = lex("--lexicon-prob", "0")
        outs = [typed(x) for x in r.lines()] if r.rc == 0 else []
        check("lexicon --lexicon-prob 0: no variant at all, the input unchanged",
              r.rc == 0 and outs == src, r)
        r = lex("--lexicon-prob", "1", "--seed", "3", "--drop-original",
                into="dialog.0.content")
        outs = [typed(x) for x in r.lines()] if r.rc == 0 else []
        want = [d["id"] for d in plain if any(p in d["dialog"][0]["content"] for p in phrases)]
        check("lexicon --into dialog.0.content --drop-original: only first turns, only variants",
              r.rc == 0 and [o["aug_of"] for o in outs] == want and len(want) > 0 and all(
                  o["dialog"][1:] == byid[o["aug_of"]]["dialog"][1:]
                  and o["dialog"][0]["content"] != byid[o["aug_of"]]["dialog"][0]["content"]
                  for o in outs), r)

    run_case("lexicon", lexicon_case)

    # ---- rate limits ---------------------------------------------------------------
    def rate_case():
        recs = [{"id": f"q{i:02d}", "text": f"paced {i}"} for i in range(15)]
        inp = write_jsonl("rate.jsonl", recs)
        control(port, reset=True, rpm=300, window=60)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--rpm", "300",
                 "--no-cache", "-c", "8", inp], base)
        st = stats(port)
        check("--rpm 300, 15 requests: exit 0, no 429, paced (>= 1.2 s, < 8 s)",
              r.rc == 0 and st["by_status"] == {"200": 15} and 1.2 <= r.secs < 8, (r, st))
        # pacing seen from the server's log: at most burst + rate * 1 s + 1 in any 1 s
        ts = sorted(json.loads(x)["t"] for x in open(path("server.log"))
                    if json.loads(x)["body_sha256"] in st["by_body"])[-15:]
        worst = max(sum(1 for u in ts if t <= u < t + 1.0) for t in ts) if ts else 99
        check("--rpm 300: at most 11 requests in any second", worst <= 11, worst)
        # the server's x-ratelimit-* headers make an unlimited client stricter: 60 a minute
        # is one a second once the first reply has told
        control(port, reset=True, rpm=60, window=60)
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache", "-c", "1",
                 write_jsonl("rate4.jsonl", recs[:4])], base)
        st = stats(port)
        check("server rpm 60, no --rpm: the x-ratelimit headers pace 4 requests (>= 1.5 s), "
              "no 429", r.rc == 0 and st["by_status"] == {"200": 4} and r.secs >= 1.5,
              (r, st["by_status"]))
        control(port, reset=True, rpm=0)
        a = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache",
                 write_jsonl("rate4.jsonl", recs[:4])], base)
        b = aug(["-q", "--progress", "-p", p_plain, "-m", MODEL, "--into", "text", "--no-cache",
                 write_jsonl("rate4.jsonl", recs[:4])], base)
        check("--progress: progress on stderr (not a terminal), the same output",
              a.rc == 0 and b.rc == 0 and a.out == b.out and a.err == b"" and len(b.err) > 0,
              (a, b))

        # a 429's retry-after is honoured for that request only
        control(port, reset=True, rpm=0, faults=[{"match": "paced 3", "fault": "429",
                                                  "retry_after": 2, "times": 1}])
        log0 = len(open(path("server.log")).readlines())
        r = aug(["-q", "-p", p_plain, "-m", MODEL, "--into", "text", "--backoff", "0.01",
                 "--no-cache", "-c", "4", write_jsonl("rate8.jsonl", recs[:8])], base)
        stats(port)  # every request booked in the log
        log = [json.loads(x) for x in open(path("server.log")).readlines()[log0:]]
        first = [e for e in log if e["status"] == 429]
        again = [e for e in log if first and e["body_sha256"] == first[0]["body_sha256"]
                 and e["status"] == 200]
        others = [e for e in log if first and e["body_sha256"] != first[0]["body_sha256"]]
        check("429 with retry-after 2: that request waits >= 1.9 s, exit 0",
              r.rc == 0 and len(first) == 1 and len(again) == 1
              and again[0]["t"] - first[0]["t"] >= 1.9, (r, log))
        check("429 with retry-after 2: the other requests are not held back (< 1.5 s)",
              len(others) == 7 and first and
              all(e["t"] - first[0]["t"] < 1.5 for e in others), others)

    run_case("rate", rate_case)

    srv.terminate()
    stub.shutdown()


try:
    main()
except Exception:
    check("no exception in augment_check.py", False, traceback.format_exc())
finally:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    shutil.rmtree(TMP, ignore_errors=True)

sys.exit(summary())
