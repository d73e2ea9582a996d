"""ft-eval against independent references: NLTK's sentence_bleu (smoothing
method 3) for every assistant turn, an independent Python reading of the
slot definition (DESIGN.md section 3) for every search turn, hand-computed
slot cases (tests/data/eval/slots.jsonl), the aggregates and --by groups
recomputed from the per-turn scores, and the hotel dialogs' real responses
scored against themselves and against perturbed copies.

Run by tests/ref/eval.sh with ft-eval on PATH; prints "N passed, M failed"."""
import gzip
import json
import math
import os
import random
import subprocess
import sys
import tempfile

from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

TESTDATA = os.environ.get("TESTDATA", os.path.join(os.path.dirname(__file__), "..", "data"))
SHARED = os.environ.get("SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
TOL = 1e-12

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True
from checks import check, summary  # noqa: E402  (tests/checks.py)


# ---- the references --------------------------------------------------------

def nltk_bleu(pred, ref):
    """The recipe's BLEU of one turn: 0 unless the prediction is an
    assistant reply; else character BLEU-4 of the stripped texts."""
    pred, ref = pred.strip(), ref.strip()
    if not pred.startswith("assistant:"):
        return 0.0
    hyp = list(pred[len("assistant:"):].strip())
    refc = list(ref[len("assistant:"):].strip())
    return float(sentence_bleu([refc], hyp, smoothing_function=SmoothingFunction().method3))


def outer_json(text):
    i, j = text.find("{"), text.rfind("}")
    if i < 0 or j < i:
        return None
    try:
        v = json.loads(text[i:j + 1])
    except ValueError:
        return None
    return v if isinstance(v, dict) else None


def jeq(a, b):
    """JSON value equality: numbers by value, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(jeq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(jeq(a[k], b[k]) for k in a)
    return a == b


def size(v):
    return len(v) if isinstance(v, list) else 1


def slot_counts(pred_text, ref_text):
    """(correct, predicted, true, parsed) of one search turn."""
    label = outer_json(ref_text)
    pred = outer_json(pred_text)
    true = sum(size(v) for v in label.values())
    if pred is None:
        return 0, 0, true, False
    predicted = sum(size(v) for v in pred.values())
    correct = 0
    for k, v in pred.items():
        if v is None or k not in label:
            continue
        if isinstance(v, list):
            if isinstance(label[k], list):
                correct += sum(1 for e in v if any(jeq(e, x) for x in label[k]))
        else:
            correct += jeq(v, label[k])
    return correct, predicted, true, True


def kind_of(ref):
    ref = ref.strip()
    if ref.startswith("search:"):
        return "search"
    if ref.startswith("assistant:"):
        return "assistant"
    return "other"


def expected_turn(rec):
    pred, ref = rec["prediction"], rec["reference"]
    t = {"id": rec.get("id"), "kind": kind_of(ref), "exact": pred.strip() == ref.strip()}
    if t["kind"] == "search":
        c, p, tr, parsed = slot_counts(pred, ref)
        t.update(parsed=parsed, slot_correct=c, slot_predicted=p, slot_true=tr)
    elif t["kind"] == "assistant":
        t.update(reply=pred.strip().startswith("assistant:"), bleu4=nltk_bleu(pred, ref))
    return t


def stats(turns):
    """The report's members for a list of expected turns."""
    s = {"turns": len(turns)}
    for k in ("search", "assistant", "other"):
        s[k] = sum(t["kind"] == k for t in turns)
    srch = [t for t in turns if t["kind"] == "search"]
    asst = [t for t in turns if t["kind"] == "assistant"]
    s["exact"] = sum(t["exact"] for t in turns)
    s["unparsable"] = sum(not t["parsed"] for t in srch)
    c = s["slot_correct"] = sum(t["slot_correct"] for t in srch)
    p = s["slot_predicted"] = sum(t["slot_predicted"] for t in srch)
    tr = s["slot_true"] = sum(t["slot_true"] for t in srch)
    s["not_reply"] = sum(not t["reply"] for t in asst)
    s["exact_match"] = s["exact"] / len(turns) if turns else None
    if srch:
        P = c / p if p else 0.0
        R = c / tr if tr else 0.0
        s["slot_p"], s["slot_r"] = P, R
        s["slot_f1"] = 2 * P * R / (P + R) if P + R > 0 else 0.0
    else:
        s["slot_p"] = s["slot_r"] = s["slot_f1"] = None
    s["bleu4"] = sum(t["bleu4"] for t in asst) / len(asst) if asst else None
    return s


def same_stats(what, got, want):
    for k, v in want.items():
        g = got.get(k, "absent")
        if isinstance(v, float) and isinstance(g, (int, float)):
            ok = abs(g - v) <= TOL
        else:
            ok = g == v and type(g) is type(v)
        if not ok:
            check(f"{what}: {k}", False, f"got {g!r}, want {v!r}")
            return
    check(what, True)


# ---- running ft-eval -------------------------------------------------------

def run_eval(records, tmp, *args):
    path = os.path.join(tmp, "in.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    per = os.path.join(tmp, "per.jsonl")
    rep = os.path.join(tmp, "report.json")
    p = subprocess.run(["ft-eval", "--json", "-o", rep, "--per-turn", per, *args, path],
                       capture_output=True, text=True)
    if p.returncode != 0:
        check("ft-eval runs", False, p.stderr)
        return None, None
    turns = [json.loads(l) for l in open(per, encoding="utf-8")]
    return turns, json.load(open(rep, encoding="utf-8"))


def compare_run(name, records, tmp, by=()):
    args = [a for f in by for a in ("--by", f)]
    turns, report = run_eval(records, tmp, *args)
    if turns is None:
        return
    want = [expected_turn(r) for r in records]
    check(f"{name}: one per-turn line per record", len(turns) == len(want))
    bad = 0
    exact_bits = 0
    worst = 0.0
    nbleu = 0
    for got, exp in zip(turns, want):
        if "bleu4" in exp and "bleu4" in got:
            nbleu += 1
            d = abs(got["bleu4"] - exp["bleu4"])
            worst = max(worst, d)
            exact_bits += got["bleu4"] == exp["bleu4"]
            if d > TOL:
                bad += 1
                if bad <= 5:
                    print("  bleu", got, exp)
            got, exp = dict(got), dict(exp)
            got.pop("bleu4"), exp.pop("bleu4")
        if got != exp:
            bad += 1
            if bad <= 5:
                print("  turn", got, exp)
    check(f"{name}: per-turn scores ({len(turns)} turns, {nbleu} BLEU, "
          f"{exact_bits} bit-identical, worst {worst:.3g})", bad == 0)
    same_stats(f"{name}: total", report, stats(want))
    for k in ("search", "assistant", "other"):
        same_stats(f"{name}: kind {k}", report["kind"][k], stats([t for t in want if t["kind"] == k]))
    for field in by:
        groups = {}
        for r, t in zip(records, want):
            v = r
            for part in field.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            groups.setdefault(json.dumps(v, ensure_ascii=False, separators=(",", ":")), []).append(t)
        got = report["by"][field]
        keys = [json.dumps(g["value"], ensure_ascii=False, separators=(",", ":")) for g in got]
        check(f"{name}: --by {field} groups", sorted(keys) == sorted(groups), f"{keys} {list(groups)}")
        for g, key in zip(got, keys):
            if key in groups:
                same_stats(f"{name}: --by {field}={key}", g, stats(groups[key]))
    return report


# ---- random and edge-case data ---------------------------------------------

ALPHABETS = [
    "ab",
    "abc ",
    "好的为您推荐酒店如家北京饭店，。",
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理",
    "\u3000\xa0 \t\nab好",
    "😀😁é e\u0301",
]


def rand_text(rng, alpha, lo=0, hi=40):
    return "".join(rng.choice(alpha) for _ in range(rng.randint(lo, hi)))


def perturb(rng, s, alpha):
    ops = rng.randint(0, 4)
    s = list(s)
    for _ in range(ops):
        op = rng.randrange(3)
        i = rng.randint(0, len(s))
        if op == 0:
            s.insert(i, rng.choice(alpha))
        elif op == 1 and s:
            del s[min(i, len(s) - 1)]
        elif s:
            s[min(i, len(s) - 1)] = rng.choice(alpha)
    return "".join(s)


def bleu_pair(rng):
    alpha = rng.choice(ALPHABETS)
    ref = rand_text(rng, alpha, 0, rng.choice([3, 10, 40, 200]))
    r = rng.random()
    if r < 0.1:
        hyp = ref
    elif r < 0.2:
        hyp = ref[: rng.randint(0, len(ref))]
    elif r < 0.3:
        hyp = rand_text(rng, rng.choice(ALPHABETS), 0, 6)
    elif r < 0.4:
        hyp = rand_text(rng, "xyz", 1, 20)          # no overlap with most alphabets
    elif r < 0.5:
        hyp = ref[::-1]
    else:
        hyp = perturb(rng, ref, alpha)
    fmt = rng.random()
    if fmt < 0.05:
        pred = hyp                                   # not a reply: 0
    elif fmt < 0.1:
        pred = "search:\n" + hyp
    elif fmt < 0.2:
        pred = " \n assistant:" + hyp + " \u3000"
    else:
        pred = "assistant: " + hyp
    return pred, "assistant: " + ref


KEYS = ["name", "type", "facilities", "price_range_lower", "price_range_upper",
        "rating_range_lower", "subway", "phone", "o"]
WORDS = ["如家", "北京饭店", "舒适型", "豪华型", "wifi", "早餐服务", "无烟房", "健身房", "4", "a}b"]


def rand_value(rng, key):
    r = rng.random()
    if key == "facilities" or r < 0.2:
        return [rng.choice(WORDS + [4, 4.0, True]) for _ in range(rng.randint(0, 4))]
    if r < 0.3:
        return None
    if r < 0.45:
        return rng.choice([4, 4.0, 5, 0, -0.0, 1, 100, 1e2, 4.5])
    if r < 0.5:
        return rng.choice([True, False])
    if r < 0.55:
        return {"a": rng.choice([1, 1.0, "x"]), "b": [1, 2]}
    return rng.choice(WORDS)


def mutate(rng, label):
    pred = {}
    for k, v in label.items():
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.3:
            v = rand_value(rng, k)
        elif r < 0.4 and isinstance(v, list):
            v = [x for x in v if rng.random() < 0.6] + ([rng.choice(WORDS)] if rng.random() < 0.3 else [])
            if v and rng.random() < 0.2:
                v.append(v[0])
        elif r < 0.45 and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        pred[k] = v
    for _ in range(rng.randint(0, 2)):
        k = rng.choice(KEYS)
        pred.setdefault(k, rand_value(rng, k))
    return pred


def dump(rng, obj):
    return json.dumps(obj, ensure_ascii=rng.random() < 0.2, indent=rng.choice([None, 4]))


def search_pair(rng):
    label = {k: rand_value(rng, k) for k in rng.sample(KEYS, rng.randint(0, 5))}
    ref = "search:\n" + dump(rng, label)
    pred_obj = label if rng.random() < 0.1 else mutate(rng, label)
    text = dump(rng, pred_obj)
    r = rng.random()
    if r < 0.05:
        text = text[: rng.randint(0, len(text))]      # cut short: mostly unparsable
    elif r < 0.08:
        text = text.replace(":", "", 1)                # broken
    elif r < 0.1:
        text = "no json here"
    elif r < 0.15:
        text = text + "\n好的 }"                        # junk after the last brace
    elif r < 0.2:
        text = text + "\n好的"
    return "search:\n" + text, ref


def other_pair(rng):
    ref = rng.choice(["", "user: 你好", "return:\n[]", "  x  ", "好"])
    pred = ref if rng.random() < 0.5 else rng.choice(["", " x", "好 ", "assistant: 好"])
    return pred, ref


def random_records(rng, n):
    recs = []
    for i in range(n):
        r = rng.random()
        pred, ref = bleu_pair(rng) if r < 0.5 else search_pair(rng) if r < 0.9 else other_pair(rng)
        rec = {"id": f"r{i}", "source_id": f"d{rng.randrange(7)}", "turn": rng.randrange(4),
               "prediction": pred, "reference": ref}
        if rng.random() < 0.8:
            rec["meta"] = {"model": rng.choice(["a", "b"])}
        recs.append(rec)
    return recs


# ---- BLEU edge cases: values NLTK gives ------------------------------------

def bleu_edges():
    pairs = [("", ""), ("a", ""), ("", "a"), ("a", "a"), ("ab", "ab"), ("abc", "abc"),
             ("abcd", "abcd"), ("a", "b"), ("ab", "ba"), ("aaaa", "a"), ("a", "aaaa"),
             ("好的", "好的，再见"), ("好 的", "好的"), ("  ", "x"), ("😀😀😀😀", "😀😀😀"),
             ("e\u0301", "é"), ("the cat", "the cat sat on the mat"),
             ("x" * 3000, "x" * 2999 + "y")]
    return [{"id": f"b{i}", "prediction": "assistant: " + h, "reference": "assistant: " + r}
            for i, (h, r) in enumerate(pairs)]


def check_known_values(tmp):
    """A few values worked out by hand from NLTK's code."""
    recs = [{"id": "1", "prediction": "assistant: ab", "reference": "assistant: ab"},
            {"id": "2", "prediction": "assistant: a", "reference": "assistant: a"},
            {"id": "3", "prediction": "assistant: abcd", "reference": "assistant: abcd"},
            {"id": "4", "prediction": "好的", "reference": "assistant: 好的"}]
    turns, _ = run_eval(recs, tmp)
    if turns is None:
        return
    got = [t["bleu4"] for t in turns]
    # 2 chars: p = 1, 1, 1/2, 1/4 -> (1/8)^(1/4); 1 char: 1, 1/2, 1/4, 1/8
    want = [0.125 ** 0.25, (1 / 64) ** 0.25, 1.0, 0.0]
    check("hand BLEU values (short identical texts are not 1)",
          all(abs(g - w) < 1e-15 for g, w in zip(got, want)), f"{got} {want}")


# ---- hand-computed slot cases ---------------------------------------------

def check_slot_cases(tmp):
    recs = [json.loads(l) for l in open(os.path.join(TESTDATA, "eval", "slots.jsonl"), encoding="utf-8")]
    turns, _ = run_eval(recs, tmp)
    if turns is None:
        return
    for r, t in zip(recs, turns):
        got = [t["slot_correct"], t["slot_predicted"], t["slot_true"]]
        check(f"slots by hand: {r['what']}", got == r["expect"], f"got {got}, want {r['expect']}")
        c, p, tr, _ = slot_counts(r["prediction"], r["reference"])
        check(f"slots by hand agree with the Python reading: {r['what']}", [c, p, tr] == r["expect"])


# ---- the hotel dialogs -----------------------------------------------------

def hotel_records():
    path = os.path.join(SHARED, "data", "hotel", "dialogs.jsonl.gz")
    recs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            turn = 0
            for t in d["dialog"]:
                if t["role"] == "search":
                    args = {k: v for k, v in t["arguments"].items() if v is not None}
                    ref = "search:\n" + json.dumps(args, indent=4, ensure_ascii=False)
                elif t["role"] == "assistant":
                    ref = "assistant: " + t["content"]
                else:
                    continue
                recs.append({"id": f"{d['id']}#{turn}", "source_id": d["id"], "turn": turn,
                             "source": d.get("source"), "reference": ref})
                turn += 1
    return recs


def hotel_perturb(rng, ref):
    if ref.startswith("search:"):
        args = json.loads(ref[len("search:"):])
        return "search:\n" + json.dumps(mutate(rng, args), ensure_ascii=False)
    text = ref[len("assistant: "):]
    return "assistant: " + perturb(rng, text, text or "好")


def check_hotel(tmp, rng):
    try:
        recs = hotel_records()
    except OSError as e:
        check("hotel dialogs readable", False, str(e))
        return
    for r in recs:
        r["prediction"] = r["reference"]
    turns, rep = run_eval(recs, tmp)
    if rep is None:
        return
    check(f"hotel: {len(recs)} responses against themselves: P = R = F1 = BLEU = exact = 1",
          rep["slot_p"] == rep["slot_r"] == rep["slot_f1"] == rep["bleu4"] == rep["exact_match"] == 1.0
          and rep["unparsable"] == 0 and rep["other"] == 0, json.dumps(rep)[:300])
    sample = rng.sample(recs, 3000)
    for r in sample:
        r["prediction"] = hotel_perturb(rng, r["reference"])
    compare_run("hotel perturbed (3000)", sample, tmp, by=("source_id", "turn"))


def main():
    rng = random.Random(20240611)
    with tempfile.TemporaryDirectory() as tmp:
        check_known_values(tmp)
        compare_run("BLEU edge cases", bleu_edges(), tmp)
        check_slot_cases(tmp)
        for seed in range(3):
            recs = random_records(random.Random(seed), 1500)
            compare_run(f"random set {seed}", recs, tmp, by=("source_id", "turn", "meta.model"))
        check_hotel(tmp, rng)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
