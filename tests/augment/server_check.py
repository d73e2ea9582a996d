#!/usr/bin/env python3
"""Self-check of tests/augment/server.py, the mock OpenAI chat-completions
server that ft-augment's tests and benchmark run against.  Starts it as a
subprocess on loopback (--port 0) and talks to it with http.client and raw
sockets only:

  - startup line, loopback-only binding, bad flags, SIGTERM exit;
  - the documented deterministic reply (content, JSON: marker, usage, model,
    n, content parts, non-ASCII), keep-alive, chunked and 100-continue;
  - auth (401 missing/wrong/other scheme), 400s, 404;
  - every fault kind, seen from the client side (drop and reset at the socket,
    partial as an incomplete read, slow as a client timeout), match, times,
    rule order, /control replace/reset/validation, --faults file;
  - concurrency, rpm and tpm windows with x-ratelimit-* and retry-after,
    latency and jitter;
  - the log and /stats, and that the key never reaches the log or stderr.

usage: server_check.py   (stdlib only; about 10 s)
Prints "N passed, M failed"; exit 1 on any failure.
"""
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import server as S  # noqa: E402  (for fmt_duration only)

PY = sys.executable
KEY = "sk-test-9f3c1e77d2b04a51XYZ"
KEY2 = "sk-file-key-0a1b2c3d4e5f"
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)
import checks  # noqa: E402


# ---- helpers --------------------------------------------------------------------

TMP = tempfile.mkdtemp(prefix="ft-augment-server-check-")
procs = []


def start(*args, name="srv"):
    err = open(os.path.join(TMP, name + ".stderr"), "w")
    p = subprocess.Popen([PY, SERVER, "--port", "0", *map(str, args)],
                         stdout=subprocess.PIPE, stderr=err, text=True)
    procs.append(p)
    r, _, _ = select.select([p.stdout], [], [], 10)
    line = p.stdout.readline() if r else ""
    m = re.fullmatch(r"PORT (\d+)\n", line)
    if not m:
        p.kill()
        raise SystemExit(f"FAIL server did not print its port: {line!r}, "
                         f"{open(err.name).read()[-2000:]}")
    return p, int(m.group(1)), err.name


def request(port, method, path, body=None, headers=None, timeout=5, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
    finally:
        if conn is None:
            c.close()  # also on a timeout, as a real client does
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def chat(port, body, key=KEY, **kw):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Authorization"] = f"Bearer {key}"
    return request(port, "POST", "/v1/chat/completions", body, h, **kw)


def control(port, obj):
    return request(port, "POST", "/control", obj)


def getj(port, path):
    s, _, d = request(port, "GET", path)
    return json.loads(d)


def raw(port, data, timeout=5, then=None):
    """send bytes, read to EOF; -> (bytes, exception or None)"""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out, err = b"", None
    try:
        s.sendall(data)
        if then:
            out = then(s)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except OSError as e:
        err = e
    s.close()
    return out, err


def raw_chat(body, key=KEY, extra=b""):
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Authorization: Bearer " + key.encode() + b"\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def expect(req):
    """the documented CONTENT, H8 and prompt_tokens, re-derived here"""
    canon = json.dumps({k: req.get(k) for k in
                        ("model", "messages", "temperature", "top_p", "max_tokens", "seed")},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    h8 = hashlib.sha256(canon.encode("utf-8")).hexdigest()[:8]

    def text(m):
        c = m.get("content")
        if isinstance(c, list):
            return "".join(p["text"] for p in c if p.get("type") == "text")
        return c or ""
    last = [text(m) for m in req["messages"] if m["role"] == "user"][-1]
    if "JSON:" in last:
        content = json.dumps({"text": last.replace("JSON:", "")[::-1], "v": h8},
                             ensure_ascii=False, separators=(",", ":"))
    else:
        content = f"p{h8}:{last}"
    return content, h8, sum(len(text(m)) for m in req["messages"])


def msg(text, **kw):
    return dict({"model": "gpt-test", "messages": [{"role": "user", "content": text}]}, **kw)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def parse_dur(s):
    m = re.fullmatch(r"(\d+)ms", s)
    if m:
        return int(m.group(1)) / 1000
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+(?:\.\d+)?)s", s)
    if not m:
        return None
    return int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60 + float(m.group(3))


def err_ok(data, etype=None):
    try:
        e = json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (isinstance(e, dict) and {"message", "type", "code"} <= set(e)
            and (etype is None or e["type"] == etype))


try:
    # ---- pure helpers --------------------------------------------------------------
    durs = {0: "0s", 0.85: "850ms", 0.0004: "1ms", 1: "1s", 1.5: "1.5s", 59.999: "59.999s",
            360: "6m0s", 90.25: "1m30.25s", 3723: "1h2m3s"}
    got = {k: S.fmt_duration(k) for k in durs}
    check("fmt_duration speaks OpenAI's format (0s, 850ms, 1.5s, 6m0s)", got == durs, got)

    # ---- refusals at startup -----------------------------------------------------
    for host in ("0.0.0.0", "192.0.2.1", "::"):
        p = subprocess.run([PY, SERVER, "--port", "0", "--host", host],
                           capture_output=True, text=True, timeout=10)
        check(f"--host {host} refused (exit 2, no PORT line)",
              p.returncode == 2 and "PORT" not in p.stdout and "loopback" in p.stderr,
              (p.returncode, p.stdout, p.stderr))
    bad = os.path.join(TMP, "bad-faults.json")
    open(bad, "w").write('[{"fault": "explode"}]')
    p = subprocess.run([PY, SERVER, "--port", "0", "--faults", bad],
                       capture_output=True, text=True, timeout=10)
    check("a bad --faults file is refused with exit 2", p.returncode == 2 and
          "fault must be one of" in p.stderr, p.stderr)

    # ---- server A: key, log ------------------------------------------------------
    LOG = os.path.join(TMP, "a.log")
    pa, A, a_err = start("--key", KEY, "--log", LOG, "--model-name", "mock-x", name="a")
    check("server A printed PORT <n>", A > 0)

    s, h, d = request(A, "GET", "/health")
    check("GET /health", s == 200 and json.loads(d) == {"ok": True})
    s, h, d = request(A, "GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    check("GET /v1/models lists --model-name", s == 200 and
          json.loads(d)["data"][0]["id"] == "mock-x" and json.loads(d)["object"] == "list", d)
    s, h, d = request(A, "GET", "/v1/models")
    check("GET /v1/models without the key: 401", s == 401 and err_ok(d), (s, d))

    # normal completion
    req = {"model": "gpt-test", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Rewrite: the cat sat on the mat."}],
        "temperature": 0.7, "seed": 3, "max_tokens": 64}
    want, h8, pt = expect(req)
    t0 = time.time()
    s, h, d = chat(A, req)
    j = json.loads(d) if s == 200 else {}
    check("completion: 200, application/json, Content-Length matches",
          s == 200 and h.get("content-type", "").startswith("application/json")
          and int(h.get("content-length", -1)) == len(d), (s, h))
    check("completion: id chatcmpl-<hex>, object, created, model from the request",
          re.fullmatch(r"chatcmpl-[0-9a-f]+", j.get("id", "")) is not None
          and j.get("object") == "chat.completion" and isinstance(j.get("created"), int)
          and abs(j["created"] - t0) < 60 and j.get("model") == "gpt-test", j)
    ch = j.get("choices", [{}])
    check("completion: one choice, assistant, finish_reason stop",
          len(ch) == 1 and ch[0].get("index") == 0 and ch[0].get("finish_reason") == "stop"
          and ch[0].get("message", {}).get("role") == "assistant", ch)
    got = ch[0].get("message", {}).get("content")
    check("completion: content = p<sha256(canonical)[:8]>:<last user text>",
          got == want and want.startswith("p") and want.endswith(":Rewrite: the cat sat on the mat."),
          (got, want))
    check("completion: usage = characters (prompt over all messages, completion = content)",
          j.get("usage") == {"prompt_tokens": pt, "completion_tokens": len(want),
                             "total_tokens": pt + len(want)} and pt == 9 + 32, j.get("usage"))

    s2, _, d2 = chat(A, req)
    j2 = json.loads(d2)
    check("same request twice: same content, fresh id",
          j2["choices"][0]["message"]["content"] == got and j2["id"] != j["id"])
    other = dict(req, temperature=0.8)
    c_other = json.loads(chat(A, other)[2])["choices"][0]["message"]["content"]
    check("another temperature: another hash, as predicted",
          c_other != got and c_other == expect(other)[0], (c_other, got))
    other = dict(req, seed=4)
    c_other = json.loads(chat(A, other)[2])["choices"][0]["message"]["content"]
    check("another seed: another hash", c_other != got and c_other == expect(other)[0])

    uni = msg("雨の日 🌧 café", temperature=1)
    j = json.loads(chat(A, uni)[2])
    w, _, upt = expect(uni)
    check("non-ASCII: hash over UTF-8 canonical JSON, tokens in code points",
          j["choices"][0]["message"]["content"] == w and j["usage"]["prompt_tokens"] == 10
          and upt == 10 and j["usage"]["completion_tokens"] == len(w), (j, w))

    jm = msg("JSON: Hello, wörld")
    j = json.loads(chat(A, jm)[2])
    c = j["choices"][0]["message"]["content"]
    w, h8j, _ = expect(jm)
    try:
        cj = json.loads(c)
    except ValueError:
        cj = None
    check("JSON: marker: content is {text: reversed without marker, v: h8}",
          c == w and cj == {"text": "dlröw ,olleH ", "v": h8j}, (c, w))

    nm = {"messages": [{"role": "user", "content": "no model here"}], "n": 3}
    j = json.loads(chat(A, nm)[2])
    w, _, _ = expect(nm)
    check("no model: --model-name; n=3: three equal choices, completion_tokens x3",
          j["model"] == "mock-x" and [c["index"] for c in j["choices"]] == [0, 1, 2]
          and all(c["message"]["content"] == w for c in j["choices"])
          and j["usage"]["completion_tokens"] == 3 * len(w), j)

    parts = {"model": "m", "messages": [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "part one, "},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "part two"}]}]}
    j = json.loads(chat(A, parts)[2])
    w, _, ppt = expect(parts)
    check("content parts and null content: text parts concatenated, last user message used",
          j["choices"][0]["message"]["content"] == w and w.endswith(":part one, part two")
          and j["usage"]["prompt_tokens"] == ppt == 5 + 18, j)

    # keep-alive
    conn = http.client.HTTPConnection("127.0.0.1", A, timeout=5)
    h = {"Authorization": f"Bearer {KEY}"}
    stats = []
    for i in range(3):
        s, hh, d = request(A, "POST", "/v1/chat/completions",
                           json.dumps(msg(f"keepalive {i}")).encode(), h, conn=conn)
        stats.append((s, id(conn.sock), hh.get("connection")))
    conn.close()
    check("keep-alive: three requests on one connection",
          all(x[0] == 200 and x[2] != "close" for x in stats) and len({x[1] for x in stats}) == 1
          and stats[0][1] != id(None), stats)

    # auth
    s, h, d = chat(A, msg("hi"), key=None)
    check("no Authorization: 401 with an OpenAI error body", s == 401 and
          err_ok(d, "invalid_request_error"), (s, d))
    s, h, d = chat(A, msg("hi"), key="sk-wrong-key-123")
    check("wrong key: 401, the key not echoed", s == 401 and err_ok(d) and b"sk-wrong" not in d)
    s, h, d = request(A, "POST", "/v1/chat/completions", json.dumps(msg("hi")).encode(),
                      {"Authorization": f"Basic {KEY}"})
    check("another scheme (Basic): 401", s == 401)
    s, h, d = request(A, "POST", "/v1/chat/completions", json.dumps(msg("hi")).encode(),
                      {"Authorization": f"bearer {KEY}"})
    check("scheme is case-insensitive (bearer)", s == 200)

    # 400s, 404
    for what, body in [("bad JSON", b"{not json"), ("no messages", b'{"model":"x"}'),
                       ("messages not a list", b'{"messages":"hi"}'),
                       ("empty messages", b'{"messages":[]}'),
                       ("message without role", b'{"messages":[{"content":"x"}]}'),
                       ("content a number", b'{"messages":[{"role":"user","content":5}]}'),
                       ("n = 0", b'{"n":0,"messages":[{"role":"user","content":"x"}]}'),
                       ("stream", b'{"stream":true,"messages":[{"role":"user","content":"x"}]}'),
                       ("not UTF-8", b'{"messages":[{"role":"user","content":"\xff"}]}'),
                       ("a JSON list", b"[1,2]")]:
        s, h, d = chat(A, body)
        check(f"400 on {what}", s == 400 and err_ok(d, "invalid_request_error"), (s, d))
    s, h, d = request(A, "POST", "/v1/nothing", b"{}")
    check("404 on an unknown path, JSON error", s == 404 and err_ok(d))

    # raw protocol corners
    out1, _ = raw(A, b"HELLO THERE FRIEND\r\n\r\n")
    out2, _ = raw(A, b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
    out3, _ = raw(A, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: lots\r\n\r\n{}")
    check("garbage: an error reply each (bad line, unknown method 501, bad Content-Length 400), "
          "server keeps serving",
          b"Bad request version" in out1 and out2.startswith(b"HTTP/1.1 501")
          and out3.startswith(b"HTTP/1.1 400") and chat(A, msg("still alive"))[0] == 200,
          (out1[:80], out2[:80], out3[:80]))
    body = json.dumps(msg("chunked body")).encode()
    chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               b"Authorization: Bearer " + KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7])
                          for i in range(0, len(body), 7)) + b"0\r\n\r\n")
    out, e = raw(A, chunked)
    hdr, _, rb = out.partition(b"\r\n\r\n")
    check("chunked request body", hdr.startswith(b"HTTP/1.1 200") and
          json.loads(rb)["choices"][0]["message"]["content"] == expect(msg("chunked body"))[0],
          out[:300])
    body = json.dumps(msg("expect continue")).encode()
    head = raw_chat(body, extra=b"Expect: 100-continue\r\n")[:-len(body)]

    def after_continue(s):
        got = s.recv(4096)
        s.sendall(body)
        return got
    out, e = raw(A, head, then=after_continue)
    check("Expect: 100-continue gets 100 then 200",
          out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), out[:200])

    # ---- faults --------------------------------------------------------------------
    def set_faults(rules):
        s, _, d = control(A, {"faults": rules})
        if s != 200:
            raise SystemExit(f"FAIL /control refused {rules}: {d}")

    set_faults([{"fault": "429", "retry_after": 3}])
    s, h, d = chat(A, msg("f429"))
    check("fault 429: status, retry-after: 3, type rate_limit_exceeded",
          s == 429 and h.get("retry-after") == "3" and err_ok(d, "rate_limit_exceeded"), (s, h, d))
    check("times defaults to 1: the next request passes", chat(A, msg("f429"))[0] == 200)
    set_faults([{"fault": "500"}, {"fault": 503, "retry_after": 2}])
    s1, h1, d1 = chat(A, msg("f5xx"))
    s2, h2, d2 = chat(A, msg("f5xx"))
    check("fault 500: 500 + server_error body, no retry-after",
          s1 == 500 and err_ok(d1, "server_error") and "retry-after" not in h1, (s1, d1))
    check("fault 503 (given as a number): 503 + retry-after: 2",
          s2 == 503 and err_ok(d2, "server_error") and h2.get("retry-after") == "2", (s2, h2))

    set_faults([{"fault": "malformed"}])
    conn = http.client.HTTPConnection("127.0.0.1", A, timeout=5)
    s, h, d = request(A, "POST", "/v1/chat/completions", json.dumps(msg("mal")).encode(),
                      {"Authorization": f"Bearer {KEY}"}, conn=conn)
    try:
        json.loads(d)
        parsed = True
    except ValueError:
        parsed = False
    s2, _, d2 = request(A, "POST", "/v1/chat/completions", json.dumps(msg("mal")).encode(),
                        {"Authorization": f"Bearer {KEY}"}, conn=conn)
    conn.close()
    check("fault malformed: 200, full Content-Length, body not JSON, connection reusable",
          s == 200 and int(h["content-length"]) == len(d) and not parsed and len(d) > 0
          and s2 == 200 and json.loads(d2)["choices"], (s, d))

    set_faults([{"fault": "empty"}])
    s, h, d = chat(A, msg("empty"))
    j = json.loads(d)
    check("fault empty: 200, valid completion, choices [] and completion_tokens 0",
          s == 200 and j["choices"] == [] and j["object"] == "chat.completion"
          and j["usage"]["completion_tokens"] == 0, j)

    set_faults([{"fault": "drop", "times": 2}])
    try:
        chat(A, msg("drop me"))
        e1 = None
    except (http.client.HTTPException, ConnectionError) as e:
        e1 = e
    check("fault drop: http.client sees RemoteDisconnected",
          isinstance(e1, http.client.RemoteDisconnected), repr(e1))
    out, e = raw(A, raw_chat(json.dumps(msg("drop me")).encode()))
    check("fault drop: at the socket, EOF without a single byte", out == b"" and e is None,
          (out, e))

    set_faults([{"fault": "partial", "times": 2}])
    try:
        s, h, d = chat(A, msg("partial"))
        e1 = None
    except (http.client.HTTPException, ConnectionError) as e:
        e1 = e
    check("fault partial: http.client raises IncompleteRead",
          isinstance(e1, http.client.IncompleteRead), repr(e1))
    out, e = raw(A, raw_chat(json.dumps(msg("partial")).encode()))
    hdr, _, rb = out.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)content-length: (\d+)", hdr)
    check("fault partial: 200 header, then EOF before Content-Length bytes",
          hdr.startswith(b"HTTP/1.1 200") and m and 0 < len(rb) < int(m.group(1)) and e is None,
          (hdr, len(rb)))

    set_faults([{"fault": "reset"}])
    out, e = raw(A, raw_chat(json.dumps(msg("reset")).encode()))
    check("fault reset: the socket sees ECONNRESET, no bytes",
          out == b"" and isinstance(e, ConnectionResetError), (out, e))

    set_faults([{"fault": "slow", "delay": 1.0}])
    t0 = time.time()
    try:
        chat(A, msg("slow"), timeout=0.3)
        e1 = None
    except (TimeoutError, socket.timeout) as e:
        e1 = e
    check("fault slow (delay 1 s): a 0.3 s client timeout fires",
          e1 is not None and time.time() - t0 < 0.9, repr(e1))
    set_faults([{"fault": "slow", "delay": 0.4}])
    t0 = time.time()
    s, h, d = chat(A, msg("slow"))
    el = time.time() - t0
    check("fault slow (delay 0.4 s): the normal reply after >= 0.4 s",
          s == 200 and 0.4 <= el < 2 and
          json.loads(d)["choices"][0]["message"]["content"] == expect(msg("slow"))[0], (s, el))

    set_faults([{"fault": "crash"}])
    s, h, d = chat(A, msg("crash"))
    check("fault crash: the handler's exception is answered 500, server lives on",
          s == 500 and err_ok(d, "server_error") and chat(A, msg("after crash"))[0] == 200,
          (s, d))

    set_faults([{"match": "NEEDLE", "fault": "500", "times": -1}])
    st = [chat(A, msg(t))[0] for t in ("hay", "a NEEDLE", "hay", "NEEDLE again", "NEEDLE")]
    check("match: only bodies containing the substring; times -1 = always",
          st == [200, 500, 200, 500, 500], st)
    set_faults([{"fault": "503", "times": 2}])
    st = [chat(A, msg("t"))[0] for _ in range(3)]
    check("times 2: two faults, then pass", st == [503, 503, 200], st)
    set_faults([{"fault": "500", "times": 0}])
    check("times 0: disabled", chat(A, msg("t"))[0] == 200)
    set_faults([{"match": "AAA", "fault": "500"}, {"fault": "503"}])
    st = [chat(A, msg(t))[0] for t in ("BBB", "AAA", "AAA", "BBB")]
    check("rules in order, first match with times left wins", st == [503, 500, 200, 200], st)
    snap = getj(A, "/control")
    check("GET /control shows rules with left and hits",
          [(r["fault"], r["left"], r["hits"]) for r in snap["faults"]] == [("500", 0, 1), ("503", 0, 1)],
          snap["faults"])

    set_faults([{"fault": "500", "times": -1}])
    s1 = chat(A, msg("x"))[0]
    set_faults([])
    check("/control faults replaces the list", s1 == 500 and chat(A, msg("x"))[0] == 200)
    set_faults([{"fault": "503", "times": -1}])
    for bad_rules in ([{"fault": "boom"}], [{"fault": "500", "tims": 2}], {"fault": "500"},
                      [{"fault": "500", "times": -2}], [{"fault": "slow", "delay": "1"}]):
        s, _, d = control(A, {"faults": bad_rules})
        check(f"/control rejects {json.dumps(bad_rules)} with 400", s == 400 and err_ok(d), (s, d))
    s, _, d = control(A, {"faults": [], "bogus": 1})
    check("/control: an unknown key is a 400 and changes nothing",
          s == 400 and chat(A, msg("x"))[0] == 503)
    s, _, d = request(A, "POST", "/control", b"{oops")
    check("/control: bad JSON is a 400", s == 400)

    # concurrency
    control(A, {"reset": True})
    set_faults([{"match": "CONC", "fault": "slow", "delay": 0.6, "times": -1}])
    res = []
    t0 = time.time()
    th = [threading.Thread(target=lambda i=i: res.append(chat(A, msg(f"CONC {i}"))[0]))
          for i in range(12)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    el = time.time() - t0
    st = getj(A, "/stats")
    check(f"12 concurrent slow (0.6 s) requests finish together ({el:.2f} s)",
          res == [200] * 12 and el < 2.0 and st["max_in_flight"] == 12, (res, el, st))

    # reset and stats
    s, _, d = control(A, {"reset": True})
    st = getj(A, "/stats")
    check("/control reset clears rules and counters",
          s == 200 and json.loads(d)["faults"] == [] and st["requests"] == 0
          and st["by_body"] == {} and st["max_in_flight"] == 0, (d, st))
    set_faults([{"match": "ZZZ", "fault": "500"}])
    bx, by, bz = (json.dumps(msg(t)).encode() for t in ("XXX", "YYY", "ZZZ"))
    for b in (bx, by, bx, bz, bz):
        chat(A, b)
    # the server books a request after its reply has gone out: wait for the
    # last one to be booked
    for _ in range(300):
        st = getj(A, "/stats")
        if st["in_flight"] == 0:
            break
        time.sleep(0.01)
    check("/stats: requests, by_status, by_fault",
          st["requests"] == 5 and st["by_status"] == {"200": 4, "500": 1}
          and st["by_fault"] == {"500": 1}, st)
    check("/stats: by_body counts each raw body (sha256), ok_by_body only normal 200s",
          st["by_body"] == {sha(bx): 2, sha(by): 1, sha(bz): 2}
          and st["ok_by_body"] == {sha(bx): 2, sha(by): 1, sha(bz): 1}, st)

    # shut A down, then read its log and stderr
    time.sleep(0.2)
    pa.terminate()
    try:
        rc = pa.wait(5)
    except subprocess.TimeoutExpired:
        rc = None
    check("SIGTERM: server exits 0 promptly", rc == 0, rc)
    logtext = open(LOG, encoding="utf-8").read()
    rows = [json.loads(x) for x in logtext.splitlines()]
    check("log: one JSON object per completion request with exactly the documented keys",
          rows and all(set(r) == {"t", "n", "body_sha256", "status", "fault", "auth"}
                       for r in rows), rows[:2])
    statuses = {r["status"] for r in rows}
    need = {200, 400, 401, 429, 500, 503, "drop", "partial", "reset", "aborted"}
    check("log: statuses seen include every kind", need <= statuses, statuses)
    check("log: auth ok/missing/bad", {r["auth"] for r in rows} >= {"ok", "missing", "bad"},
          {r["auth"] for r in rows})
    check("log: faults named", {r["fault"] for r in rows} >=
          {"429", "500", "503", "drop", "partial", "reset", "slow", "malformed", "empty", "crash", None})
    check("log: body_sha256 of a known body", sha(bx) in {r["body_sha256"] for r in rows})
    # lines are written as requests finish, so concurrent ones may swap
    check("log: n restarts at 1 after reset and counts up",
          sorted(r["n"] for r in rows[-5:]) == [1, 2, 3, 4, 5], [r["n"] for r in rows[-8:]])
    errtext = open(a_err, encoding="utf-8").read()
    check("the key appears nowhere in the log", KEY not in logtext and "Bearer" not in logtext)
    check("the key appears nowhere on stderr (which has the crash traceback)",
          KEY not in errtext and "injected crash" in errtext, errtext[-500:])
    check("nothing but the PORT line on stdout", pa.stdout.read() == "")

    # ---- server B: key file, faults file, latency, rpm, tpm --------------------------
    kf = os.path.join(TMP, "key.txt")
    open(kf, "w").write(KEY2 + "\n")
    ff = os.path.join(TMP, "faults.json")
    json.dump([{"match": "FILEFAULT", "fault": "503", "retry_after": 1, "comment": "from file"}],
              open(ff, "w"))
    pb, B, b_err = start("--rpm", 5, "--latency", 150, "--jitter", 50, "--key-file", kf,
                         "--faults", ff, name="b")
    s, h, _ = chat(B, msg("FILEFAULT"), key=KEY2)
    check("--key-file and --faults FILE: the file's rule applies",
          s == 503 and h.get("retry-after") == "1", (s, h))
    check("--key-file: another key is refused", chat(B, msg("x"))[0] == 401)
    els = []
    for i in range(3):
        t0 = time.time()
        s, _, _ = chat(B, msg(f"lat {i}"), key=KEY2)
        els.append(round(time.time() - t0, 3))
    check(f"--latency 150 --jitter 50: {els} s",
          all(0.15 <= e < 0.8 for e in els), els)

    control(B, {"reset": True})
    rows = []
    t0 = time.time()
    for i in range(7):
        t1 = time.time()
        s, h, d = chat(B, msg(f"rpm {i}"), key=KEY2)
        rows.append((s, h, d, time.time() - t1))
    ok5 = rows[:5]
    check("--rpm 5: five requests pass",
          [r[0] for r in ok5] == [200] * 5, [r[0] for r in rows])
    check("x-ratelimit-limit/remaining-requests on each: 5, 4..0",
          [r[1].get("x-ratelimit-limit-requests") for r in ok5] == ["5"] * 5 and
          [r[1].get("x-ratelimit-remaining-requests") for r in ok5] == ["4", "3", "2", "1", "0"],
          [r[1] for r in ok5])
    resets = [parse_dur(r[1].get("x-ratelimit-reset-requests", "")) for r in ok5]
    check(f"x-ratelimit-reset-requests parses as a duration near 60 s ({ok5[-1][1].get('x-ratelimit-reset-requests')})",
          all(x is not None and 55 <= x <= 60 for x in resets), resets)
    check("no token headers without --tpm", "x-ratelimit-limit-tokens" not in ok5[0][1])
    s, h, d, el = rows[5]
    ra = h.get("retry-after", "")
    check(f"6th request in the window: 429, retry-after {ra}, immediate ({el:.3f} s)",
          s == 429 and ra.isdigit() and 50 <= int(ra) <= 60 and el < 0.14
          and err_ok(d, "rate_limit_exceeded"), (s, h, d))
    check("the 429 carries x-ratelimit-* with remaining 0",
          h.get("x-ratelimit-limit-requests") == "5" and
          h.get("x-ratelimit-remaining-requests") == "0" and
          parse_dur(h.get("x-ratelimit-reset-requests", "")) is not None, h)
    snap = getj(B, "/control")
    check("429s do not count against the window (7th still 429, window holds 5)",
          rows[6][0] == 429 and snap["window_requests"] == 5, snap)

    control(B, {"reset": True, "rpm": 2, "window": 1.5, "latency": 0, "jitter": 0})
    st = [chat(B, msg(f"w {i}"), key=KEY2) for i in range(3)]
    ra = st[2][1].get("retry-after", "")
    check(f"short window: 2 pass, 3rd 429 with retry-after {ra}",
          [x[0] for x in st] == [200, 200, 429] and ra in ("1", "2"), [x[0] for x in st])
    time.sleep(int(ra or 2) + 0.05)
    check("after retry-after, the window admits again", chat(B, msg("w again"), key=KEY2)[0] == 200)

    control(B, {"reset": True, "rpm": None, "tpm": 100, "window": 60})
    x20 = msg("x" * 20)  # prompt 20 + completion 30 = 50 tokens
    s1, h1, d1 = chat(B, x20, key=KEY2)
    s2, h2, d2 = chat(B, msg("z" * 20), key=KEY2)
    s3, h3, d3 = chat(B, msg("q" * 20), key=KEY2)
    check("--tpm 100: usage 50 tokens a request",
          s1 == 200 and json.loads(d1)["usage"]["total_tokens"] == 50, d1)
    check("x-ratelimit-*-tokens: limit 100, remaining 50 then 0, no request headers",
          h1.get("x-ratelimit-limit-tokens") == "100" and
          h1.get("x-ratelimit-remaining-tokens") == "50" and
          h2.get("x-ratelimit-remaining-tokens") == "0" and
          parse_dur(h2.get("x-ratelimit-reset-tokens", "")) is not None and
          "x-ratelimit-limit-requests" not in h1, (h1, h2))
    check("over the token budget: 429, code tokens, retry-after >= 1",
          s3 == 429 and json.loads(d3)["error"]["code"] == "tokens" and
          int(h3.get("retry-after", "0")) >= 1, (s3, h3, d3))
    control(B, {"reset": True})
    s, h, d = chat(B, msg("y" * 200), key=KEY2)
    check("a request larger than --tpm: 429 request_too_large",
          s == 429 and json.loads(d)["error"]["code"] == "request_too_large", (s, d))

    pb.terminate()
    pb.wait(5)
    errb = open(b_err, encoding="utf-8").read()
    check("server B: the file key appears nowhere on stderr", KEY2 not in errb, errb[-300:])
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()

if checks.failed:
    print(f"server logs and stderr kept in {TMP}")
else:
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(summary())
