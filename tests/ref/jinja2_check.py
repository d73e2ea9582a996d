#!/usr/bin/env python3
"""Compare ft's Jinja engine with Python jinja2 (tests/ref/jinja2_ref.py).

1. Every chat template in $SHARED/data/chat-templates rendered by ft-template
   and by jinja2 (as transformers' apply_chat_template) on every conversation
   of tests/data/jinja/conversations.jsonl: byte-identical text, or both fail
   (with jinja2's message in ft-template's, for raise_exception). One check
   per (template, conversation); one more per sample for provenance: special
   tokens that came from data are template:false, those the template wrote
   are template:true.
2. Engine cases (tests/data/jinja/cases.jsonl) through the test driver
   $BUILD/tests/jinja-render: same text, or both fail; data/trained bytes as
   the case expects.
3. Robustness: deep nesting and mangled templates must give an error or a
   render, never a crash.
4. {% generation %} through ft-template: trained text is exactly what the
   generation blocks rendered.
Prints FAIL lines and ends with "N passed, N failed"."""
import copy
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jinja2_ref as ref  # noqa: E402

BIN = os.environ.get("BIN", "bin")
BUILD = os.environ.get("BUILD", "build")
SHARED = os.environ.get("SHARED", "../shared")
TESTDATA = os.environ.get("TESTDATA", os.path.join(os.path.dirname(__file__), "..", "data"))
DATA = os.path.join(TESTDATA, "jinja")
FT_TEMPLATE = os.path.join(BIN, "ft-template")
DRIVER = os.path.join(BUILD, "tests", "jinja-render")
VERBOSE = os.environ.get("VERBOSE") == "1"

os.environ.setdefault("SOURCE_DATE_EPOCH", "1700000000")

passed = failed = 0
xfailed = []


def check(ok, what, detail=""):
    global passed, failed
    if ok:
        passed += 1
        if VERBOSE:
            print("ok  ", what)
    else:
        failed += 1
        print("FAIL", what)
        if detail:
            for line in str(detail).splitlines()[:12]:
                print("     ", line[:400])


def short(x, n=300):
    r = repr(x)
    return r if len(r) <= n else r[:n] + "..."


def first_diff(a, b):
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return (f"first difference at {i}: jinja2 {short(a[max(0, i - 40):i + 60])}\n"
            f"                    ft     {short(b[max(0, i - 40):i + 60])}")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def dumps(x):
    return json.dumps(x, ensure_ascii=False)


# ---- 1. chat templates x conversations ----

MARKERS = ["</s>", "<s>", "<|im_end|>", "<|im_start|>", "<|eot_id|>", "<|start_header_id|>",
           "<|end_header_id|>", "<|begin_of_text|>", "[INST]", "[/INST]", "<<SYS>>",
           "<</SYS>>", "<end_of_turn>", "<start_of_turn>", "<bos>", "<|user|>",
           "<|assistant|>", "<|system|>", "<|endoftext|>", "[gMASK]", "<tool_call>",
           "<|python_tag|>"]


def neutralise(x, markers):
    """x with every marker in its strings replaced by a same-length text that
    contains no marker, so the template takes the same branches."""
    if isinstance(x, str):
        for mk in sorted(markers, key=len, reverse=True):
            x = x.replace(mk, "#" * len(mk))
        return x
    if isinstance(x, list):
        return [neutralise(e, markers) for e in x]
    if isinstance(x, dict):
        return {k: neutralise(v, markers) for k, v in x.items()}
    return x


def occurrences(text, markers):
    out = set()
    for mk in markers:
        i = text.find(mk)
        while i >= 0:
            out.add((i, mk))
            i = text.find(mk, i + 1)
    return out


def check_provenance(what, cfg, rec, segments):
    """Markers the template itself wrote (found by rendering with the
    markers in the data neutralised) must lie in template:true segments;
    every other marker occurrence must lie in template:false segments."""
    markers = set(MARKERS)
    for v in ref.special_tokens(cfg).values():
        markers.update(v if isinstance(v, list) else [v])
    markers.discard("")
    text = "".join(s["text"] for s in segments)
    ok, plain = ref.render_chat(cfg, neutralise(rec, markers))
    if not ok or len(plain) != len(text):
        check(False, what + " provenance", "the neutralised render differs in length")
        return
    owner = []  # template flag per byte offset of text (in characters)
    for s in segments:
        owner.extend([s["template"]] * len(s["text"]))
    from_template = occurrences(plain, markers)
    bad = []
    for (i, mk) in sorted(occurrences(text, markers)):
        flags = set(owner[i:i + len(mk)])
        want = (i, mk) in from_template
        if flags != {want}:
            bad.append(f"{mk!r} at {i}: template={sorted(flags)}, expected {want}")
    check(not bad, what + " provenance", "\n".join(bad))


def run_ft_template(tpl_path, records, extra=()):
    data = "".join(dumps(r) + "\n" for r in records)
    return subprocess.run([FT_TEMPLATE, "-q", *extra, "-t", tpl_path], input=data.encode(),
                          capture_output=True)


def chat_templates():
    paths = sorted(glob.glob(os.path.join(SHARED, "data", "chat-templates", "*.json")))
    check(len(paths) >= 8, "chat templates found", f"{len(paths)} in {SHARED}")
    convs = read_jsonl(os.path.join(DATA, "conversations.jsonl"))
    for path in paths:
        name = os.path.basename(path).split(".tokenizer_config")[0]
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
        batch = run_ft_template(path, convs, ["--skip-bad"])
        got = {}
        if batch.returncode == 0:
            for line in batch.stdout.decode().split("\n"):
                if not line:
                    continue
                s = json.loads(line)
                got[s["id"]] = s
        for rec in convs:
            what = f"{name} x {rec['id']}"
            ok, want = ref.render_chat(cfg, rec)
            sample = got.get(rec["id"])
            if ok:
                if sample is None:
                    one = run_ft_template(path, [rec])
                    check(False, what, "ft-template failed where jinja2 rendered:\n" +
                          one.stderr.decode(errors="replace"))
                    continue
                text = "".join(s["text"] for s in sample["segments"])
                check(text == want, what, first_diff(want, text))
                if text == want:
                    check_provenance(what, cfg, rec, sample["segments"])
            else:
                kind, msg = want
                if sample is not None:
                    check(False, what, f"jinja2 failed ({kind}: {msg}) but ft-template rendered")
                    continue
                one = run_ft_template(path, [rec])
                err = one.stderr.decode(errors="replace")
                if kind == "TemplateError":  # raise_exception: the message must match
                    check(one.returncode == 1 and msg in err, what,
                          f"expected the message {msg!r}, ft-template said:\n{err}")
                else:
                    check(one.returncode == 1 and err.strip(), what,
                          f"jinja2 failed ({kind}: {msg}); ft-template: exit {one.returncode}\n{err}")


# ---- 2. engine cases ----

def run_driver(cases, timeout=120):
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jsonl", delete=False) as f:
        for c in cases:
            f.write(dumps(c) + "\n")
        path = f.name
    try:
        p = subprocess.run([DRIVER, path], capture_output=True, timeout=timeout)
    finally:
        os.unlink(path)
    out = [json.loads(line) for line in p.stdout.decode().split("\n") if line]
    return p, out


def flagged(text, spans, flag):
    b = text.encode()
    return b"".join(b[off:off + n] for off, n, fl in spans if fl & flag).decode(errors="replace")


def engine_cases():
    cases = read_jsonl(os.path.join(DATA, "cases.jsonl"))
    with open(os.path.join(DATA, "varsets.json"), encoding="utf-8") as f:
        varsets = json.load(f)
    for c in cases:
        if isinstance(c.get("vars"), str):
            c["vars"] = varsets[c["vars"]]
    p, results = run_driver(cases)
    check(p.returncode == 0 and len(results) == len(cases), "jinja-render runs every case",
          f"exit {p.returncode}, {len(results)} of {len(cases)} results\n" +
          p.stderr.decode(errors="replace"))
    by_id = {r["id"]: r for r in results}
    for c in cases:
        what = "case " + c["id"]
        r = by_id.get(c["id"])
        if r is None:
            check(False, what, "no result from the driver")
            continue
        # a fresh copy each time: jinja2 templates can mutate their data
        # (list += str in the indent filter)
        variables = copy.deepcopy(c.get("vars") or {})
        variables.update(c.get("literals") or {})
        ok, want = ref.render(c["template"], variables)
        if "xfail" in c:
            # a known, out-of-scope divergence: it must still diverge
            same = (ok and r["ok"] and r["text"] == want) or (not ok and not r["ok"])
            check(not same, what + " (known divergence: " + c["xfail"] + ")",
                  "now agrees with jinja2: drop its xfail")
            xfailed.append(c["id"])
            continue
        if ok and r["ok"]:
            check(r["text"] == want, what, f"template {short(c['template'])}\n" +
                  first_diff(want, r["text"]))
        elif not ok and not r["ok"]:
            kind, msg = want
            if kind == "TemplateError":
                check(r["error"] == msg, what, f"message {r['error']!r}, jinja2 {msg!r}")
            else:
                check(True, what)
        else:
            check(False, what, f"template {short(c['template'])}\n" +
                  (f"jinja2: {short(want)}\nft: {r['phase']} error: {r['error']}" if ok else
                   f"jinja2 failed: {want}\nft rendered {short(r['text'])}"))
        for key, flag in (("data", 1), ("train", 2)):
            if key in c and r["ok"]:
                got = flagged(r["text"], r["spans"], flag)
                check(got == c[key], f"{what} {key} bytes", f"expected {c[key]!r}, got {got!r}")


# ---- 3. robustness ----

def deep_cases():
    n = 10000
    return [
        ("deep_parens", "{{ " + "(" * n + "1" + ")" * n + " }}"),
        ("deep_brackets", "{{ " + "[" * n + "1" + "]" * n + " }}"),
        ("deep_braces", "{{ " + "{'a': " * n + "1" + "}" * n + " }}"),
        ("deep_not", "{{ " + "not " * n + "1 }}"),
        ("deep_neg", "{{ " + "-" * n + "1 }}"),
        ("deep_if", "{% if true %}" * n + "x" + "{% endif %}" * n),
        ("deep_for", "{% for a in [1] %}" * n + "x" + "{% endfor %}" * n),
        ("deep_macro_def", "{% macro m() %}" * n + "{% endmacro %}" * n),
        ("deep_attr", "{{ x" + ".a" * n * 2 + " }}"),
        ("deep_call", "{{ x" + "()" * n * 2 + " }}"),
        ("deep_filters", "{{ 'x'" + " | upper" * n * 2 + " }}"),
        ("deep_plus", "{{ 1" + " + 1" * n * 2 + " }}"),
        ("deep_cond", "{{ 1" + " if 1 else 1" * n + " }}"),
        ("deep_tests", "{{ 1" + " is number == true" * n + " }}"),
        ("deep_subscript", "{{ x" + "[0]" * n * 2 + " }}"),
        ("deep_unclosed", "{{ " + "(" * n),
    ]


def robustness():
    deep = [{"id": i, "template": t, "vars": {"x": {}}} for i, t in deep_cases()]
    # a macro that recurses forever, and data nested deeper than repr allows
    deep.append({"id": "macro_recursion",
                 "template": "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}"})
    deep.append({"id": "macro_recursion_deep_expr",
                 "template": "{% macro r(n) %}{{ " + "(" * 100 + "r(n + 1)" + ")" * 100 +
                 " }}{% endmacro %}{{ r(0) }}"})
    deep.append({"id": "deep_value",
                 "template": "{% set ns = namespace(v=1) %}{% for i in range(5000) %}"
                             "{% set ns.v = [ns.v] %}{% endfor %}{{ ns.v == ns.v }}"
                             "{{ ns.v | tojson }}{{ ns.v }}"})
    p, results = run_driver(deep)
    check(p.returncode == 0 and len(results) == len(deep), "deep nesting: no crash",
          f"exit {p.returncode}\n" + p.stderr.decode(errors="replace")[-2000:])
    for r in results:
        if r["id"].startswith("deep_") and r["id"] != "deep_value":
            check(not r["ok"], f"deep nesting {r['id']} is an error", short(r))
        elif r["id"].startswith("macro_recursion"):
            check(not r["ok"], f"{r['id']} is an error", short(r))
    # moderate nesting still works (and agrees with jinja2)
    mid = [{"id": "nest_parens", "template": "{{ " + "(" * 40 + "1" + ")" * 40 + " }}"},
           {"id": "nest_if", "template": "{% if true %}" * 15 + "x" + "{% endif %}" * 15},
           {"id": "nest_plus", "template": "{{ 1" + " + 1" * 300 + " }}"},
           {"id": "nest_concat", "template": "{{ 'x'" + " ~ 'y'" * 5000 + " }}"},
           {"id": "nest_filters", "template": "{{ 'x'" + " | upper" * 100 + " }}"}]
    p, results = run_driver(mid)
    for c, r in zip(mid, results):
        ok, want = ref.render(c["template"], {})
        check(r["ok"] and ok and r["text"] == want, f"moderate nesting {c['id']}", short(r))

    # mangled templates: truncations, byte flips, splices of real templates
    rng = random.Random(20240601)
    seeds = [c["template"] for c in read_jsonl(os.path.join(DATA, "cases.jsonl"))]
    for path in sorted(glob.glob(os.path.join(SHARED, "data", "chat-templates", "*.json"))):
        with open(path, encoding="utf-8") as f:
            seeds.append(ref.chat_template(json.load(f)))
    alphabet = [c.encode() for c in "{}%#-+()[]'\"|.,:~=!<>*/ \n\\"] + [
        w.encode() for w in ("{{", "}}", "{%", "%}", "{#", "#}", "endif", "endfor", "if ",
                             "for ", "\u00e9", "in ", "raw", "endraw", "set ", "macro ",
                             "\u3000", "-%}", "{%-", "is ", "not ", "(", "[")] + [
        b"\x00", b"\xff", b"\xc3", b"\xe2\x80"]
    with open(os.path.join(DATA, "varsets.json"), encoding="utf-8") as f:
        fuzz_vars = dict(json.load(f)["V"])
    fuzz_vars["messages"] = [{"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "yo"}]
    fuzz = []
    for k in range(3000):
        t = rng.choice(seeds).encode()
        op = k % 5
        if op == 0 and t:
            t = t[:rng.randrange(len(t))]
        elif op == 1 and t:
            i = rng.randrange(len(t))
            t = t[:i] + rng.choice(alphabet) + t[i + 1:]
        elif op == 2 and t:
            i = rng.randrange(len(t))
            t = t[:i] + t[i + rng.randrange(1, 8):]
        elif op == 3:
            u = rng.choice(seeds).encode()
            t = t[:rng.randrange(len(t) + 1)] + u[rng.randrange(len(u) + 1):]
        else:
            for _ in range(rng.randrange(1, 6)):
                i = rng.randrange(len(t) + 1)
                t = t[:i] + rng.choice(alphabet) + t[i:]
        fuzz.append({"id": f"fuzz{k}", "template_hex": t.hex(), "vars": fuzz_vars,
                     "literals": {"bos_token": "<s>", "eos_token": "</s>"}})
    for k in range(300):
        t = bytes(rng.randrange(0, 256) for _ in range(rng.randrange(1, 80)))
        if k % 2:  # mostly tag syntax
            t = b"{{ " + t + b" }}" if k % 4 == 1 else b"{% " + t + b" %}"
        fuzz.append({"id": f"garbage{k}", "template_hex": t.hex()})
    p, results = run_driver(fuzz, timeout=600)
    check(p.returncode == 0 and len(results) == len(fuzz), f"{len(fuzz)} mangled templates: no crash",
          f"exit {p.returncode}, {len(results)} results\n" + p.stderr.decode(errors="replace")[-2000:])
    agree = disagree = 0
    for c, r in zip(fuzz, results):
        vs = copy.deepcopy(c.get("vars") or {})
        vs.update(c.get("literals") or {})
        try:
            src = bytes.fromhex(c["template_hex"]).decode()
        except UnicodeDecodeError:
            # the engine must refuse invalid UTF-8; jinja2 takes str only
            agree += not r["ok"]
            disagree += r["ok"]
            continue
        ok, want = ref.render(src, vs)
        same = (ok and r["ok"] and want == r["text"]) or (not ok and not r["ok"])
        agree += same
        disagree += not same
        if not same and os.environ.get("FUZZ_DIFF"):
            print("fuzz differs:", short(src, 200), "|", short(want, 120), "|", short(r, 200))
    if VERBOSE or os.environ.get("FUZZ_DIFF"):
        print(f"mangled templates: {agree} agree with jinja2, {disagree} differ")


# ---- 4. generation blocks through ft-template ----

GEN_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m.role == 'assistant' %}<|assistant|>\n{% generation %}{{ m.content }}<|end|>"
    "{% endgeneration %}\n"
    "{% else %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endif %}{% endfor %}")


def generation_blocks():
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".jinja", delete=False) as f:
        f.write(GEN_TEMPLATE)
        path = f.name
    try:
        recs = [{"id": "g1", "messages": [
                    {"role": "system", "content": "sys <|end|>"},
                    {"role": "user", "content": "q <|assistant|>"},
                    {"role": "assistant", "content": "a1 <|end|> {% endgeneration %}"},
                    {"role": "user", "content": "q2"},
                    {"role": "assistant", "content": "a2"}]},
                {"id": "g2", "messages": [{"role": "user", "content": "x"},
                                          {"role": "assistant", "content": ""},
                                          {"role": "user", "content": "y"},
                                          {"role": "assistant", "content": "z"}]}]
        p = run_ft_template(path, recs, ["--bos", "<s>"])
        check(p.returncode == 0, "generation template renders", p.stderr.decode(errors="replace"))
        samples = [json.loads(line) for line in p.stdout.decode().split("\n") if line]
        for rec, s in zip(recs, samples):
            what = f"generation {rec['id']}"
            text = "".join(x["text"] for x in s["segments"])
            ok, want = ref.render(GEN_TEMPLATE, {"messages": rec["messages"], "bos_token": "<s>"})
            check(ok and text == want, what + " text", first_diff(want if ok else "", text))
            trained = "".join(x["text"] for x in s["segments"] if x["train"])
            expect = "".join(m["content"] + "<|end|>" for m in rec["messages"]
                             if m["role"] == "assistant")
            check(trained == expect, what + " trained text", f"{trained!r} != {expect!r}")
            data = "".join(x["text"] for x in s["segments"] if not x["template"])
            expect = "".join(m["content"] for m in rec["messages"])
            check(data == expect, what + " data text", f"{data!r} != {expect!r}")
            lits = [x["text"] for x in s["segments"] if x["template"]]
            check(all("{% endgeneration" not in t and "q <" not in t for t in lits),
                  what + " template text", short(lits))
    finally:
        os.unlink(path)


def main():
    for tool in (FT_TEMPLATE, DRIVER):
        if not os.access(tool, os.X_OK):
            print(f"FAIL {tool} is missing (build with make check-tests)")
            print("0 passed, 1 failed")
            return 1
    only = sys.argv[1:] or ["templates", "cases", "robust", "generation"]
    if "templates" in only:
        chat_templates()
    if "cases" in only:
        engine_cases()
    if "robust" in only:
        robustness()
    if "generation" in only:
        generation_blocks()
    if xfailed:
        print(f"known divergences from jinja2 (out of scope): {', '.join(xfailed)}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
