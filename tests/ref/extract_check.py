"""examples/crosswoz/extract against the raw CrossWOZ data it reads.

Independent checks (hotel records rebuilt here from hotel_db.json, search
constraints re-evaluated here): every line valid, the four roles in a sane
order, search arguments of the allowed keys and types, every returned record
a real hotel_db entry in the recipe's shape that satisfies its search,
non-empty texts, stable order, byte-identical reruns, the recipe template
renders every dialog in the reference format, two hand-checked dialogs, the
same arguments as the recipe's hotel data where a user turn is word for word
the same, and the errors. Prints "N passed, N failed"."""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

FT_ROOT = os.environ["FT_ROOT"]
SHARED = os.environ["SHARED"]
TESTS = os.environ["TESTS"]
BIN = os.environ.get("BIN", os.path.join(FT_ROOT, "bin"))
EXTRACT = os.path.join(FT_ROOT, "examples", "crosswoz", "extract")
CW = os.path.join(SHARED, "data", "crosswoz")
HOTEL_DATA = os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz")
ROLES = ("user", "search", "return", "assistant")
KEYS = {"name", "type", "facilities", "price_range_lower", "price_range_upper",
        "rating_range_lower", "rating_range_upper"}
TYPES = {"经济型", "舒适型", "高档型", "豪华型"}
RECORD_KEYS = ["name", "type", "address", "subway", "phone", "facilities",
               "price", "rating", "hotel_id"]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)


def run(args, python=True):
    cmd = ([os.environ.get("PYTHON", "python3")] if python else []) + [EXTRACT] + args
    return subprocess.run(cmd, capture_output=True)


def db_records():
    with open(os.path.join(CW, "hotel_db.json"), encoding="utf-8") as f:
        raw = json.load(f)
    out = []
    for i, (name, h) in enumerate(raw):
        out.append({"name": name, "type": h["酒店类型"], "address": h["地址"],
                    "subway": h["地铁"], "phone": h["电话"], "facilities": h["酒店设施"],
                    "price": -1.0 if h["价格"] is None else float(h["价格"]),
                    "rating": h["评分"], "hotel_id": i})
    return out


def meets(r, a):
    """Why record r fails search arguments a, or None."""
    if "name" in a and a["name"] not in r["name"]:
        return "name"
    if "type" in a and r["type"] != a["type"]:
        return "type"
    if any(not any(f in g for g in r["facilities"]) for f in a.get("facilities", [])):
        return "facilities"
    p = r["price"]
    if "price_range_lower" in a and (p < 0 or p < a["price_range_lower"]):
        return "price lower"
    if "price_range_upper" in a and (p < 0 or p > a["price_range_upper"]):
        return "price upper"
    if r["rating"] < a.get("rating_range_lower", 0) or r["rating"] > a.get("rating_range_upper", 5):
        return "rating"
    return None


def arg_problem(a):
    if not isinstance(a, dict) or not a:
        return "not a non-empty object"
    if set(a) - KEYS:
        return f"keys {sorted(set(a) - KEYS)}"
    for k, v in a.items():
        if v is None:
            return f"{k} null"
    if "name" in a and (not isinstance(a["name"], str) or not a["name"]):
        return "name"
    if "type" in a and a["type"] not in TYPES:
        return "type"
    fs = a.get("facilities", ["x"])
    if not isinstance(fs, list) or not fs or fs != sorted(set(fs)) or \
            not all(isinstance(f, str) and f for f in fs):
        return "facilities"
    for k in ("price_range_lower", "price_range_upper", "rating_range_lower", "rating_range_upper"):
        if k in a and (isinstance(a[k], bool) or not isinstance(a[k], (int, float)) or a[k] < 0):
            return k
    for k in ("rating_range_lower", "rating_range_upper"):
        if k in a and (not isinstance(a[k], float) or a[k] > 5):
            return k
    if a.get("price_range_lower", 0) > a.get("price_range_upper", 1e9) or \
            a.get("rating_range_lower", 0) > a.get("rating_range_upper", 5):
        return "lower > upper"
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="ft-extract.")
    try:
        body(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary()


def body(tmp):
    out1 = os.path.join(tmp, "a.jsonl")
    p = run(["--crosswoz", CW, "-o", out1])
    check("extract exits 0", p.returncode == 0, p.stderr.decode()[-500:])
    if p.returncode != 0:
        return
    err = p.stderr.decode()
    m = re.fullmatch(r"extract: (\d+) dialogs read, (\d+) hotel dialogs written; turns: "
                     r"user (\d+), search (\d+), return (\d+), assistant (\d+)"
                     r" \((\d+) unusable slot values dropped, (\d+) unknown hotel names\)\n", err)
    check("one summary line on stderr", m is not None, err)
    check("stdout empty with -o", p.stdout == b"")
    data = open(out1, "rb").read()

    # determinism: a second run (default data directory, stdout) gives the same bytes
    p2 = run([], python=False)       # executable, finds ../shared from its own location
    check("runs as an executable with default paths", p2.returncode == 0, p2.stderr.decode()[-300:])
    check("two runs byte-identical", p2.stdout == data)

    lines = data.decode("utf-8").split("\n")
    check("output ends with a newline", lines[-1] == "")
    lines = lines[:-1]
    dialogs, bad_json = [], 0
    for l in lines:
        try:
            dialogs.append(json.loads(l))
        except ValueError:
            bad_json += 1
    check("every line valid JSON", bad_json == 0, f"{bad_json} bad")
    check("dialogs: more than 700", len(dialogs) > 700, str(len(dialogs)))
    check("every record is {id, source, dialog} in that order",
          all(list(d) == ["id", "source", "dialog"] for d in dialogs))
    ids = [d["id"] for d in dialogs]
    check("ids unique", len(set(ids)) == len(ids))
    key = [({"val": 0, "test": 1}[i.split("-")[0]], int(i.split("-")[1])) for i in ids]
    check("stable order: val then test, by dialog id", key == sorted(key))
    check("source names the split", all(d["source"] == "crosswoz-" + d["id"].split("-")[0] for d in dialogs))

    records = db_records()
    counts = dict.fromkeys(ROLES, 0)
    bad = {k: [] for k in ("role", "order", "text", "args", "first order", "record", "satisfy")}
    for d in dialogs:
        t = d["dialog"]
        prev, first_search = None, True
        for i, x in enumerate(t):
            r = x.get("role")
            if r not in ROLES:
                bad["role"].append(d["id"]); break
            counts[r] += 1
            # user first; a search answered by its return; user after assistant
            ok = {"user": prev in (None, "assistant"), "search": prev in ("user", "return"),
                  "return": prev == "search", "assistant": prev in ("user", "return")}[r]
            if not ok or (i == 1 and r != "search"):
                bad["order"].append(d["id"])
            if r in ("user", "assistant"):
                if list(x) != ["role", "content"] or not isinstance(x["content"], str) \
                        or not x["content"].strip():
                    bad["text"].append(d["id"])
            if r == "search":
                a = x.get("arguments")
                why = arg_problem(a) if list(x) == ["role", "arguments"] else "turn keys"
                if why:
                    bad["args"].append((d["id"], why))
                elif first_search and list(a) != sorted(a):
                    bad["first order"].append(d["id"])
                first_search = False
            if r == "return":
                a = t[i - 1].get("arguments") or {}
                for rec in x.get("records", [None]) if list(x) == ["role", "records"] else [None]:
                    hid = rec.get("hotel_id") if isinstance(rec, dict) else None
                    if not isinstance(hid, int) or not 0 <= hid < len(records) or \
                            list(rec) != RECORD_KEYS or rec != records[hid] or \
                            type(rec["price"]) is not float or type(rec["rating"]) is not float:
                        bad["record"].append((d["id"], hid))
                        continue
                    why = meets(rec, a)
                    if why:
                        bad["satisfy"].append((d["id"], rec["name"], why))
            prev = r
        if prev != "assistant":
            bad["order"].append(d["id"])
    check("roles only user/search/return/assistant", not bad["role"], str(bad["role"][:3]))
    check("turn order: user first, then a search; search->return; ends with assistant",
          not bad["order"], str(bad["order"][:3]))
    check("user/assistant contents non-empty strings", not bad["text"], str(bad["text"][:3]))
    check("search arguments: allowed keys, right types, no nulls", not bad["args"], str(bad["args"][:3]))
    check("first search of a dialog has sorted keys", not bad["first order"], str(bad["first order"][:3]))
    check("every returned record is its hotel_db entry in the recipe's shape",
          not bad["record"], str(bad["record"][:3]))
    check("every returned record satisfies its search", not bad["satisfy"], str(bad["satisfy"][:3]))
    if m:
        got = [int(m.group(i)) for i in range(1, 7)]
        check("summary counts match the output",
              got == [1000, len(dialogs)] + [counts[r] for r in ROLES], f"{got} vs {counts}")
    check("every search has a return", counts["search"] == counts["return"])

    # --split: the val part of all, exactly
    pv = run(["--split", "val"])
    want = "".join(l + "\n" for l in lines if l.startswith('{"id": "val-')).encode()
    check("--split val is the val part of the whole output", pv.returncode == 0 and pv.stdout == want)
    check("--split val reads 500 dialogs", b"extract: 500 dialogs read" in pv.stderr, pv.stderr.decode())

    # the recipe template renders every dialog, in the reference format
    tpl = os.path.join(BIN, "ft-template")
    if not os.access(tpl, os.X_OK):
        print(f"note: {tpl} missing; template checks skipped")
    else:
        gz = os.path.join(tmp, "a.jsonl.gz")
        with gzip.open(gz, "wb") as f:
            f.write(data)
        samples = os.path.join(tmp, "samples.jsonl")
        pt = subprocess.run([tpl, "-q", "-t", os.path.join(FT_ROOT, "examples", "crosswoz", "hotel.jinja"),
                             "-o", samples, out1], capture_output=True)
        check("ft-template -t hotel.jinja accepts every dialog", pt.returncode == 0, pt.stderr.decode()[-300:])
        if pt.returncode == 0:
            pr = subprocess.run([os.environ.get("PYTHON", "python3"), os.path.join(TESTS, "ref", "crosswoz.py"),
                                 gz, samples], capture_output=True)
            check("rendering equals the reference prompt format (tests/ref/crosswoz.py)",
                  pr.returncode == 0, pr.stdout.decode()[-400:])

    byid = {d["id"]: d for d in dialogs}
    # hand-checked: val 80 (read in the raw data): a pure hotel part after
    # attractions and restaurants; the first query is 经济型, 400-500元; the
    # system selects 雅悦酒店(北京西直门店) and 中安之家北京东单宾馆 (hotel_db 144,
    # 244: 经济型, 441 and 446元); the user picks one and thanks (a hotel act):
    # no new search since the constraints did not change.
    want80 = [
        {"role": "user", "content": "这么多好玩的地方啊，真是太好了，我还想找一个最低价格400-500元的经济型酒店住宿，你有什么好的推荐吗？"},
        {"role": "search", "arguments": {"price_range_lower": 400, "price_range_upper": 500, "type": "经济型"}},
        {"role": "return", "records": [records[144], records[244]]},
        {"role": "assistant", "content": "给您推荐雅悦酒店(北京西直门店)和中安之家北京东单宾馆。"},
        {"role": "user", "content": "就去雅悦酒店(北京西直门店)吧，谢谢你帮了我这么多！"},
        {"role": "assistant", "content": "不用客气！"},
    ]
    check("hand-checked val-80", byid.get("val-80", {}).get("dialog") == want80,
          json.dumps(byid.get("val-80"), ensure_ascii=False)[:400])
    check("hand-checked val-80 record values", records[144]["name"] == "雅悦酒店(北京西直门店)"
          and records[244]["price"] == 446.0 and records[144]["type"] == "经济型")
    # val 211: 1000元以上 经济型 finds nothing; the system relaxes its query to
    # 经济型 (sys_state) and offers 速8酒店(北京前门大栅栏店), 228元 (hotel_db 22);
    # then the user adds 叫醒服务 (which 速8 has); then asks about the
    # surroundings (no search); the restaurant and attraction turns after are
    # dropped, and so is the final thanks (not right after a hotel turn).
    d211 = byid.get("val-211", {}).get("dialog", [])
    want211 = [("user", None), ("search", {"price_range_lower": 1000.0, "type": "经济型"}), ("return", []),
               ("search", {"type": "经济型"}), ("return", [records[22]]), ("assistant", None),
               ("user", "那您看看哪个酒店提供叫醒服务的吧。"),
               ("search", {"type": "经济型", "facilities": ["叫醒服务"]}), ("return", [records[22]]),
               ("assistant", "刚才和您说的速8酒店(北京前门大栅栏店)就可以的。"),
               ("user", "好吧，在这家酒店附近有什么餐馆和景点么？"), ("assistant", "不好意思哦，我这边都没有查到。")]
    got211 = [(x["role"], x.get("content", x.get("arguments", x.get("records")))) for x in d211]
    ok = len(got211) == len(want211) and all(
        g[0] == w[0] and (w[1] is None or g[1] == w[1]) for g, w in zip(got211, want211))
    ok = ok and all(list(g[1]) == list(w[1]) for g, w in zip(got211, want211) if g[0] == "search")
    check("hand-checked val-211 (relaxed query, key order of a later search)", ok,
          json.dumps(got211, ensure_ascii=False)[:400])
    check("hand-checked val-211 record", records[22]["name"] == "速8酒店(北京前门大栅栏店)"
          and records[22]["price"] == 228.0 and "叫醒服务" in records[22]["facilities"])

    # the recipe's data: where a user turn before a search is word for word
    # one of ours, the arguments are the same (its dialogs come from CrossWOZ's
    # training split, so only such turns can be compared)
    if os.path.exists(HOTEL_DATA):
        def firsts(ds, src):
            out = {}
            for d in ds:
                if src and d["source"] != src:
                    continue
                t = d["dialog"]
                for i in range(len(t) - 1):
                    if t[i]["role"] == "user" and t[i + 1]["role"] == "search":
                        out.setdefault(t[i]["content"].strip(), t[i + 1]["arguments"])
            return out
        with gzip.open(HOTEL_DATA, "rt", encoding="utf-8") as f:
            ref = firsts((json.loads(l) for l in f), "enhanced")
        ours = firsts(dialogs, None)
        common = [u for u in ref if u in ours]
        same = [u for u in common if list(ref[u].items()) == list(ours[u].items())]
        check(f"same search arguments as the hotel data on shared user turns ({len(same)}/{len(common)})",
              len(common) >= 5 and len(same) == len(common))

    # errors
    p = run(["--crosswoz", os.path.join(tmp, "nowhere")])
    check("missing data: exit 1, extract: file: reason",
          p.returncode == 1 and p.stdout == b"" and
          p.stderr.decode() == f"extract: {os.path.join(tmp, 'nowhere', 'hotel_db.json')}: no such file\n",
          p.stderr.decode())
    bad = os.path.join(tmp, "bad")
    os.mkdir(bad)
    shutil.copy(os.path.join(CW, "hotel_db.json"), bad)
    with open(os.path.join(bad, "val.json.zip"), "wb") as f:
        f.write(b"not a zip")
    p = run(["--crosswoz", bad, "--split", "val"])
    check("malformed zip: exit 1 naming the file", p.returncode == 1 and
          p.stderr.decode().startswith(f"extract: {os.path.join(bad, 'val.json.zip')}: "), p.stderr.decode())
    with zipfile.ZipFile(os.path.join(bad, "test.json.zip"), "w") as z:
        z.writestr("test.json", json.dumps({"1": {"messages": [{"role": "sys", "content": "x", "dialog_act": []}]}}))
    p = run(["--crosswoz", bad, "--split", "test"])
    check("malformed dialog: exit 1 naming file and dialog", p.returncode == 1 and
          "test.json.zip: dialog 1: message 0" in p.stderr.decode(), p.stderr.decode())
    with open(os.path.join(bad, "hotel_db.json"), "w") as f:
        f.write("[[")
    target = os.path.join(tmp, "kept.jsonl")
    with open(target, "w") as f:
        f.write("old\n")
    p = run(["--crosswoz", bad, "-o", target])
    check("bad hotel_db.json: exit 1, output file untouched", p.returncode == 1 and
          "hotel_db.json: bad JSON" in p.stderr.decode() and open(target).read() == "old\n",
          p.stderr.decode())
    check("no temporary files left", sorted(os.listdir(tmp)) ==
          sorted(x for x in os.listdir(tmp) if not x.startswith(".extract.")))
    p = run(["--split", "train"])
    check("bad option: usage error", p.returncode == 2 and b"usage" in p.stderr.lower())


if __name__ == "__main__":
    sys.exit(main())
