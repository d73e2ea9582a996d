#!/usr/bin/env python3
"""A mock OpenAI-compatible chat-completions server on loopback, with fault
injection, for the tests and benchmark of ft-augment.  Python stdlib only.

COMMAND LINE

  server.py [--port 0] [--host 127.0.0.1] [--latency MS] [--jitter MS]
            [--rpm N] [--tpm N] [--window S] [--key KEY | --key-file F]
            [--faults FILE] [--log FILE] [--model-name NAME]
            [--ascii-json] [--verbose]

  Binds loopback only (127.0.0.0/8, ::1 or "localhost"; anything else is
  refused, exit 2).  As soon as it listens it prints exactly one line
  "PORT <n>" on stdout and flushes (use --port 0 and read it), then serves
  until SIGTERM/SIGINT (exit 0).  Threaded (one daemon thread per
  connection), HTTP/1.1 keep-alive, Content-Length on every normal reply,
  "Expect: 100-continue" and chunked request bodies accepted.

  --latency MS, --jitter MS   every admitted completion request sleeps
                              MS + uniform(0, jitter) ms before its reply
                              (auth/400/rate-limit-429 replies are immediate)
  --rpm N, --tpm N            sliding-window limits (window --window S,
                              default 60 s) on requests / tokens
  --key KEY, --key-file F     require "Authorization: Bearer KEY"
                              (file: first line, whitespace stripped)
  --faults FILE               JSON list of fault rules (below) to start with
  --log FILE                  append one JSON line per completion request
  --model-name NAME           default "ft-mock"; listed by /v1/models, used
                              in replies when the request names no model
  --ascii-json                escape non-ASCII in replies (\\uXXXX, with
                              surrogate pairs); default is raw UTF-8

ENDPOINTS

  POST /v1/chat/completions   (also /chat/completions)
      body {model, messages:[{role, content}...], temperature?, top_p?,
      max_tokens?, seed?, n?, ...}.  Order of processing:
        1. auth (if a key is set): missing/wrong -> 401
        2. JSON and shape: bad JSON, messages missing/empty/not a list, a
           message not an object, content not string/list/null, bad n,
           "stream": true -> 400
        3. rate limits -> 429 (not counted in the window)
        4. the request is counted in the window, then the first matching
           fault rule (if any) is taken
        5. sleep latency + jitter (+ the rule's "delay")
        6. reply (normal, or the fault's)
      Errors are {"error": {"message", "type", "code", "param": null}};
      the key is never echoed.
  GET  /v1/models             {"object":"list","data":[{"id":NAME,...}]}
                              (needs the key if one is set)
  GET  /health                {"ok": true}
  GET  /stats                 {"requests", "by_status", "by_fault",
                              "by_body": {body_sha256: count},
                              "ok_by_body": {body_sha256: count of normal
                              200 replies}, "in_flight", "max_in_flight",
                              "prompt_tokens", "completion_tokens"}
                              (completion requests only)
  GET  /control               current settings, rules (with "left" and
                              "hits") and window occupancy
  POST /control               JSON object, any of:
                                "reset": true   clear rules, stats, request
                                                numbering and the windows
                                "faults": [...] replace the rule list
                                "latency", "jitter" (ms), "rpm", "tpm"
                                (null or 0 = off), "window" (s)
                              applied atomically (reset first); a bad field
                              -> 400 and nothing changes.  No auth needed.

NORMAL REPLY (deterministic, so tests can predict it)

  {"id": "chatcmpl-<24 hex, random>", "object": "chat.completion",
   "created": <unix int>, "model": <request model if a non-empty string,
   else --model-name>, "choices": [{"index": i, "message": {"role":
   "assistant", "content": CONTENT}, "finish_reason": "stop"}, ...n],
   "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}

  TEXT(m)  = m.content if a string; "" if null; if a list, the
             concatenation of part["text"] of its {"type":"text"} parts
  LAST     = TEXT of the last message with role "user" ("" if none)
  CANON    = json.dumps({"model": req.get("model"), "messages":
             req["messages"], "temperature": ..., "top_p": ...,
             "max_tokens": ..., "seed": ...}   (absent keys -> null)
             sort_keys=True, separators=(",", ":"), ensure_ascii=False)
             encoded UTF-8 (numbers re-serialized as parsed: 1 vs 1.0
             differ)
  H8       = sha256(CANON).hexdigest()[:8]
  CONTENT  = if "JSON:" occurs in LAST:
               json.dumps({"text": LAST.replace("JSON:", "")[::-1],
                           "v": H8}, ensure_ascii=False,
                          separators=(",", ":"))
             else:
               "p" + H8 + ":" + LAST
  n (default 1, 1..16) choices, all with the same CONTENT.
  Tokens (estimate = characters, i.e. Unicode code points):
    prompt_tokens = sum of len(TEXT(m)) over all messages
    completion_tokens = n * len(CONTENT); total = the sum.
  max_tokens only enters the hash; nothing is truncated.

RATE LIMITS (--rpm / --tpm, sliding window of --window seconds)

  A request costs 1 request and total_tokens tokens (computed before
  replying, so exactly what "usage" will say).  It is admitted if
  (window requests + 1 <= rpm) and (window tokens + cost <= tpm); if not:
  429, "retry-after: <int s, >= 1>" = time until enough window entries
  expire, error type "rate_limit_exceeded", code "requests" / "tokens" /
  "request_too_large" (cost > tpm: can never pass; retry-after = window).
  429s are not counted.  Every completion reply (also 400/401/429/faults)
  carries, when the limit is on:
    x-ratelimit-limit-requests, x-ratelimit-remaining-requests,
    x-ratelimit-reset-requests, and the same three "-tokens" for tpm;
  remaining is after this request; reset is the time until the window
  is empty again (OpenAI: "until the limit resets to its initial state"),
  in OpenAI/Go duration format: "0s", "850ms", "1s", "1.5s", "6m0s".

FAULT RULES (--faults FILE and POST /control {"faults": [...]})

  [{"match": "<substring of the raw request body>" (omitted/null = any),
    "fault": "429" | "500" | "503" | "slow" | "drop" | "malformed" |
             "partial" | "empty" | "reset" | "crash",
    "times": k          (first k matching requests; default 1; -1 = always;
                         0 = disabled),
    "retry_after": s    (429/503: sent as "retry-after: s"; integers as
                         such, else as written e.g. "0.5"),
    "delay": s          (extra sleep before acting; "slow" defaults to 5),
    "comment": "..."}   (ignored)]
  Rules are tried in order; the first that matches and has times left
  applies and is decremented (under a lock).  Unknown keys or fault names
  are errors.
    429        429 + error body type "rate_limit_exceeded"
    500 / 503  that status + error body type "server_error"
    slow       sleep "delay" s, then the normal reply (client timeouts)
    drop       read the request, close the connection without a byte
    malformed  200, Content-Type application/json, body not JSON
               (truncated completion JSON), correct Content-Length
    partial    200 with the Content-Length of the full normal body, send
               half of it, close the connection
    empty      200, valid completion with "choices": [] and
               completion_tokens 0
    reset      read the request, close with TCP RST (SO_LINGER 0)
    crash      raise inside the handler: exercises the server's own
               robustness (logged to stderr, client gets a 500)

LOG (--log FILE; completion requests only, one JSON line each)

  {"t": unix float, "n": request number (1-based), "body_sha256": hex of
   the raw body, "status": int | "drop" | "partial" | "reset" | "aborted"
   (client gone before the reply), "fault": name | null,
   "auth": "ok" | "missing" | "bad"}  ("ok" also when no key is set).
  Never the key or the Authorization header.
"""
import argparse
import collections
import hashlib
import hmac
import ipaddress
import json
import math
import random
import secrets
import select
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

FAULTS = ("429", "500", "503", "slow", "drop", "malformed", "partial",
          "empty", "reset", "crash")
RULE_KEYS = {"match", "fault", "times", "retry_after", "delay", "comment"}
MAX_BODY = 64 << 20
MARKER = "JSON:"


class BadRequest(Exception):
    pass


# ---- pure functions (also imported by server_check.py) -------------------------

def fmt_duration(seconds):
    """OpenAI/Go style duration: 0s, 850ms, 1s, 1.5s, 6m0s, 1h2m3s."""
    ms = int(math.ceil(seconds * 1000 - 1e-6))
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    mins, rem = divmod(ms, 60000)
    hours, mins = divmod(mins, 60)
    sec = str(rem // 1000) if rem % 1000 == 0 else f"{rem / 1000:.3f}".rstrip("0")
    out = ""
    if hours:
        out += f"{hours}h"
    if hours or mins:
        out += f"{mins}m"
    return out + sec + "s"


def text_of(msg):
    c = msg.get("content")
    if c is None:
        return ""
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        parts = []
        for p in c:
            if not isinstance(p, dict):
                raise BadRequest("content parts must be objects")
            if p.get("type") == "text":
                t = p.get("text")
                if not isinstance(t, str):
                    raise BadRequest("a text part needs a string 'text'")
                parts.append(t)
        return "".join(parts)
    raise BadRequest("message content must be a string, a list of parts or null")


def canonical(req):
    keys = ("model", "messages", "temperature", "top_p", "max_tokens", "seed")
    return json.dumps({k: req.get(k) for k in keys}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def completion_content(req):
    """-> (content, h8, prompt_tokens) for a validated request."""
    msgs = req["messages"]
    texts = [text_of(m) for m in msgs]
    last = ""
    for m, t in zip(msgs, texts):
        if m.get("role") == "user":
            last = t
    h8 = hashlib.sha256(canonical(req)).hexdigest()[:8]
    if MARKER in last:
        content = json.dumps({"text": last.replace(MARKER, "")[::-1], "v": h8},
                             ensure_ascii=False, separators=(",", ":"))
    else:
        content = "p" + h8 + ":" + last
    return content, h8, sum(len(t) for t in texts)


def validate(req):
    if not isinstance(req, dict):
        raise BadRequest("the request body must be a JSON object")
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise BadRequest("'messages' must be a non-empty list")
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("each message must be an object with a string 'role'")
    n = req.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
        raise BadRequest("'n' must be an integer in 1..16")
    if req.get("stream"):
        raise BadRequest("streaming is not supported by this server")
    return n


def parse_rules(obj):
    if not isinstance(obj, list):
        raise ValueError("faults must be a JSON list of rules")
    out = []
    for i, r in enumerate(obj):
        if not isinstance(r, dict):
            raise ValueError(f"rule {i}: not an object")
        extra = set(r) - RULE_KEYS
        if extra:
            raise ValueError(f"rule {i}: unknown key(s) {sorted(extra)}")
        fault = r.get("fault")
        if isinstance(fault, int) and not isinstance(fault, bool):
            fault = str(fault)
        if fault not in FAULTS:
            raise ValueError(f"rule {i}: fault must be one of {', '.join(FAULTS)}")
        match = r.get("match")
        if match is not None and not isinstance(match, str):
            raise ValueError(f"rule {i}: match must be a string")
        times = r.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or times < -1:
            raise ValueError(f"rule {i}: times must be an integer >= -1")

        def num(k, default):
            v = r.get(k, default)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"rule {i}: {k} must be a number >= 0")
            return v
        out.append({"match": match, "fault": fault, "times": times, "left": times,
                    "retry_after": num("retry_after", None),
                    "delay": num("delay", 5 if fault == "slow" else 0),
                    "hits": 0,
                    "_m": match.encode("utf-8") if match is not None else None})
    return out


def err_body(message, etype, code):
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


# ---- shared state ---------------------------------------------------------------

class State:
    def __init__(self, a, key, rules):
        self.lock = threading.Lock()
        self.key = key
        self.latency = a.latency
        self.jitter = a.jitter
        self.rpm = a.rpm or None
        self.tpm = a.tpm or None
        self.window = a.window
        self.model_name = a.model_name
        self.ascii = a.ascii_json
        self.verbose = a.verbose
        self.rules = rules
        self.log = open(a.log, "a", encoding="utf-8") if a.log else None
        self._clear()

    def _clear(self):
        self.n = 0
        self.by_status = collections.Counter()
        self.by_fault = collections.Counter()
        self.by_body = collections.Counter()
        self.ok_by_body = collections.Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.win = collections.deque()  # (t, tokens)
        self.win_tokens = 0

    # auth: "ok" / "missing" / "bad"
    def auth(self, header):
        if self.key is None:
            return "ok"
        if not header:
            return "missing"
        scheme, _, tok = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not tok.strip():
            return "bad"
        return "ok" if hmac.compare_digest(tok.strip().encode(), self.key.encode()) else "bad"

    def enter(self):
        with self.lock:
            self.n += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.n

    def leave(self, rec, ok_tokens):
        with self.lock:
            self.in_flight -= 1
            self.by_status[str(rec["status"])] += 1
            if rec["fault"]:
                self.by_fault[rec["fault"]] += 1
            self.by_body[rec["body_sha256"]] += 1
            if ok_tokens is not None:
                self.ok_by_body[rec["body_sha256"]] += 1
                self.prompt_tokens += ok_tokens[0]
                self.completion_tokens += ok_tokens[1]
            if self.log:
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()

    def _expire(self, now):
        while self.win and self.win[0][0] <= now - self.window:
            self.win_tokens -= self.win.popleft()[1]

    def _rl_headers(self, now):
        h = []
        reset = (self.win[-1][0] + self.window - now) if self.win else 0
        if self.rpm:
            h += [("x-ratelimit-limit-requests", str(self.rpm)),
                  ("x-ratelimit-remaining-requests", str(max(0, self.rpm - len(self.win)))),
                  ("x-ratelimit-reset-requests", fmt_duration(reset))]
        if self.tpm:
            h += [("x-ratelimit-limit-tokens", str(self.tpm)),
                  ("x-ratelimit-remaining-tokens", str(max(0, self.tpm - self.win_tokens))),
                  ("x-ratelimit-reset-tokens", fmt_duration(reset))]
        return h

    def rl_headers(self):
        with self.lock:
            now = time.monotonic()
            self._expire(now)
            return self._rl_headers(now)

    def admit(self, cost):
        """-> (None, headers) if admitted (and counted), else ((retry_after, code), headers)."""
        with self.lock:
            now = time.monotonic()
            self._expire(now)
            wait, code = 0.0, None
            if self.rpm and len(self.win) + 1 > self.rpm:
                wait, code = self.win[len(self.win) - self.rpm][0] + self.window - now, "requests"
            if self.tpm:
                if cost > self.tpm:
                    wait, code = max(wait, self.window), "request_too_large"
                elif self.win_tokens + cost > self.tpm:
                    need, acc, w = self.win_tokens + cost - self.tpm, 0, 0.0
                    for t, c in self.win:
                        acc += c
                        if acc >= need:
                            w = t + self.window - now
                            break
                    if w >= wait:
                        wait, code = w, "tokens"
            if code:
                return (max(1, math.ceil(wait)), code), self._rl_headers(now)
            self.win.append((now, cost))
            self.win_tokens += cost
            return None, self._rl_headers(now)

    def take_fault(self, body):
        with self.lock:
            for r in self.rules:
                if r["left"] == 0:
                    continue
                if r["_m"] is not None and r["_m"] not in body:
                    continue
                if r["left"] > 0:
                    r["left"] -= 1
                r["hits"] += 1
                return dict(r)
        return None

    def control(self, req):
        if not isinstance(req, dict):
            raise ValueError("control body must be a JSON object")
        extra = set(req) - {"reset", "faults", "latency", "jitter", "rpm", "tpm", "window"}
        if extra:
            raise ValueError(f"unknown control key(s) {sorted(extra)}")
        rules = parse_rules(req["faults"]) if "faults" in req else None
        nums = {}
        for k in ("latency", "jitter", "rpm", "tpm", "window"):
            if k in req:
                v = req[k]
                if v is None and k in ("rpm", "tpm"):
                    v = 0
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 \
                        or (k == "window" and v <= 0):
                    raise ValueError(f"{k} must be a number >= 0 (window > 0)")
                nums[k] = v
        with self.lock:
            if req.get("reset"):
                self.rules = []
                self._clear()
            if rules is not None:
                self.rules = rules
            for k, v in nums.items():
                if k in ("rpm", "tpm"):
                    v = int(v) or None
                setattr(self, k, v)

    def snapshot(self):
        with self.lock:
            now = time.monotonic()
            self._expire(now)
            return {"faults": [{k: v for k, v in r.items() if not k.startswith("_")}
                               for r in self.rules],
                    "latency": self.latency, "jitter": self.jitter, "rpm": self.rpm,
                    "tpm": self.tpm, "window": self.window,
                    "window_requests": len(self.win), "window_tokens": self.win_tokens,
                    "model_name": self.model_name, "auth_required": self.key is not None}

    def stats(self):
        with self.lock:
            return {"requests": self.n, "by_status": dict(self.by_status),
                    "by_fault": dict(self.by_fault), "by_body": dict(self.by_body),
                    "ok_by_body": dict(self.ok_by_body), "in_flight": self.in_flight,
                    "max_in_flight": self.max_in_flight,
                    "prompt_tokens": self.prompt_tokens,
                    "completion_tokens": self.completion_tokens}


# ---- HTTP -----------------------------------------------------------------------

class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def server_bind(self):
        # HTTPServer.server_bind does a reverse DNS lookup; skip it
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.server_address[0]
        self.server_port = self.server_address[1]
        self.rst = set()
        self.rst_lock = threading.Lock()

    def shutdown_request(self, request):
        with self.rst_lock:
            rst = id(request) in self.rst
            self.rst.discard(id(request))
        if rst:
            self.close_request(request)  # SO_LINGER 0 is set: RST, no FIN
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, (ConnectionError, TimeoutError, socket.timeout)):
            return
        sys.stderr.write(f"server.py: error on a connection from {client_address}:\n")
        traceback.print_exc(file=sys.stderr)


class Server6(Server):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ft-mock-openai/1"
    timeout = 120  # idle keep-alive connections are closed after this

    # -- plumbing
    def version_string(self):
        return self.server_version

    def log_request(self, code="-", size="-"):
        if self.server.state.verbose:
            sys.stderr.write(f"server.py: {self.command} {self.path} {code}\n")

    def log_message(self, fmt, *args):
        sys.stderr.write("server.py: %s - %s\n" % (self.address_string(), fmt % args))

    def _dumps(self, obj):
        return json.dumps(obj, ensure_ascii=self.server.state.ascii).encode("utf-8")

    def _send(self, status, body, headers=(), length=None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._sent = True
        self.wfile.write(body)

    def _json(self, status, obj, headers=()):
        self._send(status, self._dumps(obj), headers)

    def _read_body(self):
        """-> bytes, or None when the connection is unusable (then close)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                if len(out) + size > MAX_BODY:
                    raise OverflowError
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    return None
                out += chunk
                self.rfile.readline(3)
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n < 0:
            raise ValueError
        if n > MAX_BODY:
            raise OverflowError
        body = self.rfile.read(n)
        return body if len(body) == n else None

    def _peer_gone(self):
        try:
            r, _, _ = select.select([self.connection], [], [], 0)
            return bool(r) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _guard(self, fn):
        self._sent = False
        try:
            fn()
        except (ConnectionError, TimeoutError, socket.timeout):
            self.close_connection = True  # the client went away
        except Exception:
            sys.stderr.write(f"server.py: exception handling {self.command} {self.path}:\n")
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            if not self._sent:
                try:
                    self._json(500, err_body("internal server error", "server_error",
                                             "internal_error"))
                except Exception:
                    pass

    def do_GET(self):
        self._guard(self._get)

    def do_POST(self):
        self._guard(self._post)

    # -- routes
    def _get(self):
        st = self.server.state
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("/v1/models", "/models"):
            if st.auth(self.headers.get("Authorization")) != "ok":
                return self._json(401, err_body("invalid or missing API key",
                                                "invalid_request_error", "invalid_api_key"))
            return self._json(200, {"object": "list", "data": [
                {"id": st.model_name, "object": "model", "created": 0, "owned_by": "ft"}]})
        if path == "/health":
            return self._json(200, {"ok": True})
        if path == "/stats":
            return self._json(200, st.stats())
        if path == "/control":
            return self._json(200, st.snapshot())
        self._json(404, err_body(f"no route GET {path}", "invalid_request_error", "not_found"))

    def _post(self):
        path = urlsplit(self.path).path.rstrip("/")
        try:
            body = self._read_body()
        except OverflowError:
            self.close_connection = True
            return self._json(413, err_body("request body too large",
                                            "invalid_request_error", "too_large"))
        except ValueError:
            self.close_connection = True
            return self._json(400, err_body("bad Content-Length or chunk size",
                                            "invalid_request_error", "bad_framing"))
        if body is None:
            self.close_connection = True
            return
        if path in ("/v1/chat/completions", "/chat/completions"):
            return self._chat(body)
        if path == "/control":
            try:
                self.server.state.control(json.loads(body.decode("utf-8")))
            except (ValueError, UnicodeDecodeError) as e:
                return self._json(400, err_body(f"bad control request: {e}",
                                                "invalid_request_error", "bad_control"))
            return self._json(200, dict(ok=True, **self.server.state.snapshot()))
        self._json(404, err_body(f"no route POST {path}", "invalid_request_error", "not_found"))

    def _chat(self, body):
        st = self.server.state
        rec = {"t": time.time(), "n": st.enter(),
               "body_sha256": hashlib.sha256(body).hexdigest(),
               "status": 500, "fault": None, "auth": None}
        ok_tokens = None
        try:
            ok_tokens = self._chat_inner(body, rec)
        except (ConnectionError, TimeoutError, socket.timeout):
            rec["status"] = "aborted"
            raise
        finally:
            st.leave(rec, ok_tokens)

    def _chat_inner(self, body, rec):
        st = self.server.state
        rec["auth"] = auth = st.auth(self.headers.get("Authorization"))
        if auth != "ok":
            rec["status"] = 401
            msg = "missing API key" if auth == "missing" else "incorrect API key provided"
            return self._json(401, err_body(msg, "invalid_request_error", "invalid_api_key"),
                              st.rl_headers())
        try:
            req = json.loads(body.decode("utf-8"))
            n = validate(req)
            content, h8, prompt_tokens = completion_content(req)
        except (ValueError, UnicodeDecodeError, RecursionError, BadRequest) as e:
            rec["status"] = 400
            msg = str(e) if isinstance(e, BadRequest) else "the body is not valid JSON"
            return self._json(400, err_body(msg, "invalid_request_error", "invalid_request"),
                              st.rl_headers())
        completion_tokens = n * len(content)
        cost = prompt_tokens + completion_tokens
        limited, rl = st.admit(cost)
        if limited:
            retry, code = limited
            rec["status"] = 429
            return self._json(429, err_body(
                f"rate limit reached ({code}); retry after {retry} s",
                "rate_limit_exceeded", code), [("retry-after", str(retry))] + rl)

        rule = st.take_fault(body)
        fault = rule["fault"] if rule else None
        rec["fault"] = fault
        pause = (st.latency + random.uniform(0, st.jitter)) / 1000.0
        if rule:
            pause += rule["delay"] or 0
        if pause > 0:
            time.sleep(pause)
            if self._peer_gone():
                rec["status"] = "aborted"
                self.close_connection = True
                return None

        def retry_hdr():
            ra = rule.get("retry_after")
            if ra is None:
                return []
            return [("retry-after", str(int(ra)) if float(ra).is_integer() else str(ra))]

        if fault == "crash":
            raise RuntimeError("injected crash (fault rule 'crash')")
        if fault == "429":
            rec["status"] = 429
            return self._json(429, err_body("rate limit reached (injected)",
                                            "rate_limit_exceeded", "injected"),
                              retry_hdr() + rl)
        if fault in ("500", "503"):
            rec["status"] = int(fault)
            msg = "internal error (injected)" if fault == "500" else "overloaded (injected)"
            return self._json(int(fault), err_body(msg, "server_error",
                                                   "internal_error" if fault == "500"
                                                   else "overloaded"),
                              (retry_hdr() if fault == "503" else []) + rl)
        if fault == "drop":
            rec["status"] = "drop"
            self.close_connection = True
            return None
        if fault == "reset":
            rec["status"] = "reset"
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            with self.server.rst_lock:
                self.server.rst.add(id(self.connection))
            return None

        model = req.get("model") if isinstance(req.get("model"), str) and req.get("model") \
            else st.model_name
        empty = fault == "empty"
        reply = {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion",
                 "created": int(time.time()), "model": model,
                 "choices": [] if empty else [
                     {"index": i, "message": {"role": "assistant", "content": content},
                      "finish_reason": "stop"} for i in range(n)],
                 "usage": {"prompt_tokens": prompt_tokens,
                           "completion_tokens": 0 if empty else completion_tokens,
                           "total_tokens": prompt_tokens + (0 if empty else completion_tokens)}}
        full = self._dumps(reply)
        if fault == "malformed":
            rec["status"] = 200
            cut = full[:max(1, full.find(b'"content"'))] + b'"content":"' + \
                content[:8].encode("utf-8")
            return self._send(200, cut, rl)
        if fault == "partial":
            rec["status"] = "partial"
            self.close_connection = True
            self._send(200, full[:len(full) // 2], rl, length=len(full))
            return None
        rec["status"] = 200
        self._send(200, full, rl)
        return None if empty else (prompt_tokens, completion_tokens)


# ---- main -----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description="mock OpenAI chat-completions server "
                                 "with fault injection (loopback only)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--latency", type=float, default=0.0, metavar="MS")
    ap.add_argument("--jitter", type=float, default=0.0, metavar="MS")
    ap.add_argument("--rpm", type=int, default=0)
    ap.add_argument("--tpm", type=int, default=0)
    ap.add_argument("--window", type=float, default=60.0, metavar="S")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--key")
    g.add_argument("--key-file")
    ap.add_argument("--faults", metavar="FILE")
    ap.add_argument("--log", metavar="FILE")
    ap.add_argument("--model-name", default="ft-mock")
    ap.add_argument("--ascii-json", action="store_true")
    ap.add_argument("--verbose", "-v", action="store_true")
    a = ap.parse_args()

    def die(msg):
        sys.stderr.write(f"server.py: {msg}\n")
        sys.exit(2)

    if a.latency < 0 or a.jitter < 0 or a.rpm < 0 or a.tpm < 0 or a.window <= 0:
        die("--latency/--jitter/--rpm/--tpm must be >= 0 and --window > 0")
    host = "127.0.0.1" if a.host == "localhost" else a.host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        die(f"--host must be a loopback address, not {a.host!r}")
    if not ip.is_loopback:
        die(f"refusing to bind {a.host}: loopback only")
    key = a.key
    if a.key_file:
        try:
            with open(a.key_file, encoding="utf-8") as f:
                key = f.readline().strip()
        except OSError as e:
            die(f"cannot read the key file: {e.strerror}")
    if key is not None and not key:
        die("the key is empty")
    rules = []
    if a.faults:
        try:
            with open(a.faults, encoding="utf-8") as f:
                rules = parse_rules(json.load(f))
        except (OSError, ValueError) as e:
            die(f"{a.faults}: {e}")

    cls = Server6 if ip.version == 6 else Server
    try:
        srv = cls((host, a.port), Handler)
    except OSError as e:
        die(f"cannot listen on {host}:{a.port}: {e.strerror}")
    srv.state = State(a, key, rules)

    stop = threading.Event()
    signal_handler = lambda signum, frame: stop.set()  # noqa: E731
    signal.signal(signal.SIGTERM, signal_handler)
    signal.signal(signal.SIGINT, signal_handler)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    sys.stdout.write(f"PORT {srv.server_address[1]}\n")
    sys.stdout.flush()
    while not stop.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    if srv.state.log:
        srv.state.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
