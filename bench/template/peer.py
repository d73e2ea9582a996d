#!/usr/bin/python3
"""Python peer for bench/template/run: the CrossWOZ hotel prompt format of
examples/crosswoz/hotel.jinja written directly with the json module, the way
the reference recipe builds its prompts, emitting ft-template's sample shape
{"id", "group", "segments": [{"text", "train", "template"}]}.

Segments are laid out as ft-template lays them out: neighbouring template
text with the same trained flag is one segment (the blank line after a turn
joins the next turn's "[Round i]" and role prefix). Built in one pass rather
than by merging afterwards; an empty content string would leave an empty
data segment where ft-template has none (the hotel data has none; the
comparison in bench/template/run would show it).

Usage: peer.py [--copy] [FILE]   (JSONL dialogs; stdin when no FILE; samples
on stdout). --copy renders nothing: json.loads and json.dumps each line, the
floor any json-module transform pays.
"""
import json
import sys

EOS = "</s>"


def seg(text, train, template):
    return {"text": text, "train": train, "template": template}


def segments(dialog):
    segs = []
    add = segs.append
    rnd = 0
    sep = ""  # the blank line that ends the previous turn
    for turn in dialog:
        role = turn["role"]
        lead = sep
        sep = "\n\n"
        if role == "user" or role == "return":
            lead += "[Round %d]\n\n" % rnd
            rnd += 1
        if role == "user":
            add(seg(lead + "user: ", False, True))
            add(seg(turn["content"], False, False))
        elif role == "return":
            add(seg(lead + "return:\n", False, True))
            add(seg(json.dumps(turn["records"], indent=4, ensure_ascii=False),
                    False, False))
        elif role == "search":
            args = {k: v for k, v in turn["arguments"].items() if v is not None}
            if lead:
                add(seg(lead, False, True))
            add(seg("search:\n", True, True))
            add(seg(json.dumps(args, indent=4, ensure_ascii=False), True, False))
            add(seg(EOS, True, True))
        elif role == "assistant":
            if lead:
                add(seg(lead, False, True))
            add(seg("assistant: ", True, True))
            add(seg(turn["content"], True, False))
            add(seg(EOS, True, True))
        else:
            raise ValueError("unknown turn role: " + role)
    if sep:
        add(seg(sep, False, True))
    return segs


def main():
    args = sys.argv[1:]
    copy = args[:1] == ["--copy"]
    if copy:
        args = args[1:]
    src = open(args[0], encoding="utf-8") if args else sys.stdin
    write = sys.stdout.write
    if copy:
        for line in src:
            write(json.dumps(json.loads(line), ensure_ascii=False))
            write("\n")
        return
    for line in src:
        rec = json.loads(line)
        sample = {"id": rec["id"], "group": rec.get("group", rec["id"]),
                  "segments": segments(rec["dialog"])}
        write(json.dumps(sample, ensure_ascii=False))
        write("\n")


if __name__ == "__main__":
    main()
