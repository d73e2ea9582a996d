#!/usr/bin/python3
"""Python peer for bench/template/run: the CrossWOZ hotel prompt format of
examples/crosswoz/hotel.jinja, written directly with the json module (the
way the reference recipe builds its prompts), emitting ft-template's sample
shape {"id", "group", "segments": [{"text", "train", "template"}]}.

Usage: peer.py [FILE]   (JSONL dialogs; stdin when no FILE; samples on stdout)
"""
import json
import sys

EOS = "</s>"


def render(dialog):
    """Pieces (text, train, template) of one dialog, in order."""
    pieces = []
    add = pieces.append
    rnd = 0
    for turn in dialog:
        role = turn["role"]
        if role == "user" or role == "return":
            add(("[Round %d]\n\n" % rnd, False, True))
            rnd += 1
        if role == "user":
            add(("user: ", False, True))
            add((turn["content"], False, False))
            add(("\n\n", False, True))
        elif role == "search":
            args = {k: v for k, v in turn["arguments"].items() if v is not None}
            add(("search:\n", True, True))
            add((json.dumps(args, indent=4, ensure_ascii=False), True, False))
            add((EOS, True, True))
            add(("\n\n", False, True))
        elif role == "return":
            add(("return:\n", False, True))
            add((json.dumps(turn["records"], indent=4, ensure_ascii=False),
                 False, False))
            add(("\n\n", False, True))
        elif role == "assistant":
            add(("assistant: ", True, True))
            add((turn["content"], True, False))
            add((EOS, True, True))
            add(("\n\n", False, True))
        else:
            raise ValueError("unknown turn role: " + role)
    return pieces


def segments(pieces):
    """Merge neighbouring pieces with the same flags, drop empty ones."""
    segs = []
    for text, train, template in pieces:
        if not text:
            continue
        if segs and segs[-1]["train"] == train and segs[-1]["template"] == template:
            segs[-1]["text"] += text
        else:
            segs.append({"text": text, "train": train, "template": template})
    return segs


def main():
    src = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
    out = sys.stdout
    for line in src:
        rec = json.loads(line)
        sample = {"id": rec["id"], "group": rec.get("group", rec["id"]),
                  "segments": segments(render(rec["dialog"]))}
        out.write(json.dumps(sample, ensure_ascii=False))
        out.write("\n")


if __name__ == "__main__":
    main()
