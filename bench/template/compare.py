#!/usr/bin/python3
"""Compare a peer's samples with ft-template's, record by record, for
bench/template/run.

Usage: compare.py REF PEER [--loose]
Prints one line: records, text_equal, segments_equal, format_only, extra,
first_text_mismatch. text_equal counts records with the same id, group and
rendered text (segments concatenated); segments_equal those whose segment
lists (text, train, template) are identical too. With --loose, format_only
counts records that differ only in how embedded JSON is formatted (the jq
peer's compact tojson): same flags and boundaries, and every differing segment
is data text that parses to the same JSON value. extra counts lines that only
one side has; first_text_mismatch is a 1-based line number, 0 if none.
"""
import json
import sys


def same_but_format(segs_a, segs_b):
    if len(segs_a) != len(segs_b):
        return False
    for a, b in zip(segs_a, segs_b):
        if (a["train"], a["template"]) != (b["train"], b["template"]):
            return False
        if a["text"] != b["text"]:
            if a["template"]:
                return False
            try:
                if json.loads(a["text"]) != json.loads(b["text"]):
                    return False
            except ValueError:
                return False
    return True


def main():
    ref_path, peer_path = sys.argv[1], sys.argv[2]
    loose = "--loose" in sys.argv[3:]
    records = text_equal = segments_equal = format_only = 0
    first_mismatch = 0
    with open(ref_path, encoding="utf-8") as ref, open(peer_path, encoding="utf-8") as peer:
        for line_ref, line_peer in zip(ref, peer):
            records += 1
            a, b = json.loads(line_ref), json.loads(line_peer)
            same_ids = (a["id"], a["group"]) == (b["id"], b["group"])
            text_a = "".join(s["text"] for s in a["segments"])
            text_b = "".join(s["text"] for s in b["segments"])
            if same_ids and text_a == text_b:
                text_equal += 1
            elif not first_mismatch:
                first_mismatch = records
            if same_ids and a["segments"] == b["segments"]:
                segments_equal += 1
            elif loose and same_ids and same_but_format(a["segments"], b["segments"]):
                format_only += 1
        extra = sum(1 for _ in ref) + sum(1 for _ in peer)
    print(records, text_equal, segments_equal, format_only, extra, first_mismatch)


if __name__ == "__main__":
    main()
