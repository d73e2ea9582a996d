"""The reference recipe's prompt format, written from its description in
DESIGN.md, against ft-template's rendering of examples/crosswoz/hotel.jinja.

Reference: a context is rendered turn by turn; "[Round i]\n\n" before every
user and return turn (i from 0); user/assistant as "role: content\n\n"; search
as "search:\n" + arguments without nulls as JSON (indent 4, non-ASCII kept) +
"\n\n"; return as "return:\n" + records as JSON (indent 4) + "\n\n". A
trained response is "assistant: content" or "search:\n" + filtered arguments,
followed by EOS. Whole dialogs: every search/assistant turn is a response."""
import gzip
import json
import sys

EOS = "</s>"


def turn_text(turn):
    if turn["role"] in ("user", "assistant"):
        return turn["role"] + ": " + turn["content"]
    if turn["role"] == "search":
        args = {k: v for k, v in turn["arguments"].items() if v is not None}
        return "search:\n" + json.dumps(args, indent=4, ensure_ascii=False)
    return "return:\n" + json.dumps(turn["records"], indent=4, ensure_ascii=False)


def expected(dialog):
    """(text, trained pieces) for a whole dialog."""
    text, trained, i = "", [], 0
    for turn in dialog:
        if turn["role"] in ("user", "return"):
            text += f"[Round {i}]\n\n"
            i += 1
        piece = turn_text(turn)
        if turn["role"] in ("search", "assistant"):
            piece += EOS
            trained.append(piece)
        text += piece + "\n\n"
    return text, trained


def main():
    data, ours = sys.argv[1], sys.argv[2]
    dialogs = [json.loads(l) for l in gzip.open(data, "rt", encoding="utf-8")]
    samples = [json.loads(l) for l in open(ours, encoding="utf-8")]
    passed = failed = 0

    def check(what, ok):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print("FAIL", what)

    check("one sample per dialog", len(samples) == len(dialogs))
    bad_text = bad_train = bad_special = 0
    for d, s in zip(dialogs, samples):
        text, trained = expected(d["dialog"])
        segs = s["segments"]
        if s["id"] != d["id"] or "".join(g["text"] for g in segs) != text:
            bad_text += 1
            if bad_text <= 3:
                print("  text differs for", d["id"])
        # trained runs, in order, must be exactly the responses + EOS
        runs, cur = [], None
        for g in segs:
            if g["train"]:
                cur = (cur or "") + g["text"]
            elif cur is not None:
                runs.append(cur)
                cur = None
        if cur is not None:
            runs.append(cur)
        if runs != trained:
            bad_train += 1
            if bad_train <= 3:
                print("  trained spans differ for", d["id"])
        # every EOS is template text, one per response
        if sum(g["text"].count(EOS) for g in segs if g["template"]) != len(trained):
            bad_special += 1
    check(f"rendered text equals the reference format ({bad_text} differ)", bad_text == 0)
    check(f"trained spans are the responses + EOS ({bad_train} differ)", bad_train == 0)
    check(f"one EOS of template text per response ({bad_special} bad)", bad_special == 0)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
