"""Write tests/data/tokenize/hf-llama2.jsonl: Hugging Face's token ids for
chat conversations rendered with real Llama-2-tokenizer chat templates.

Not run by make test (it needs transformers from PyPI). Run it after
changing the conversations or the templates:

    python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install transformers sentencepiece tokenizers
    /tmp/hfvenv/bin/python tests/hf/tokenizer_fixture.py

Each line: {"id", "template", "legacy", "messages", "hf_ids", "segments"}; segments
are what bin/ft-template renders for the same conversation with the same
template, and hf_ids what tokenizer.apply_chat_template(tokenize=True)
gives (AutoTokenizer over the Llama-2 tokenizer.model and the template's
real tokenizer_config.json). tests/ref/tokenize_check.py checks that
ft-tokenize -c tokenizer_config.json turns the segments into exactly hf_ids. Data here never spells a special token:
Hugging Face would turn it into one, which ft refuses to do by design.
"""
import gzip
import json
import os
import subprocess
import sys

import transformers
import shutil
import tempfile

from transformers import AutoTokenizer

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
shared = os.path.join(os.path.dirname(root), "shared")
model = os.path.join(shared, "tokenizers", "llama2-32k.model")
# real configs with the Llama-2 vocabulary: legacy false (the first two) and
# true (mistral's config over the Llama-2 model: its template and flags)
templates = ["llama-2-7b-chat-hf", "tinyllama-1.1b-chat", "mistral-7b-instruct-v0.2"]


def conversations():
    convs = [
        [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi there."}],
        [{"role": "system", "content": "You are terse."},
         # not two spaces in a row: with legacy=false, Hugging Face's fast
         # tokenizer merges "  leading" as "▁▁" "leading" where SentencePiece
         # (and ft) give "▁" "▁leading" (docs/tokenize.md)
         {"role": "user", "content": " leading and trailing space "},
         {"role": "assistant", "content": "\nnewline first\n\n\ttab"},
         {"role": "user", "content": "emoji 𝄞 😀 and rare 𠀋"},
         {"role": "assistant", "content": "ok 😀"}],
        [{"role": "user", "content": "价格在500元以下的酒店？"},
         {"role": "assistant", "content": "好的，为您推荐：北京饭店。"}],
    ]
    with gzip.open(os.path.join(shared, "data", "hotel", "dialogs.jsonl.gz"), "rt") as f:
        for k, line in enumerate(f):
            if k >= 12:
                break
            d = json.loads(line)
            msgs = []
            for t in d["dialog"]:
                role = t.get("role")
                text = t.get("content")
                if role == "search":
                    role, text = "assistant", json.dumps(t["arguments"], ensure_ascii=False)
                if not isinstance(text, str):
                    continue
                if role == "user":
                    if msgs and msgs[-1]["role"] == "user":
                        msgs[-1]["content"] += "\n" + text
                    else:
                        msgs.append({"role": "user", "content": text})
                elif role == "assistant":
                    if msgs and msgs[-1]["role"] == "user":
                        msgs.append({"role": "assistant", "content": text})
            if msgs and msgs[-1]["role"] == "assistant":
                convs.append(msgs)
    return convs


def main():
    out = []
    for name in templates:
        cfg_path = os.path.join(shared, "data", "chat-templates", name + ".tokenizer_config.json")
        cfg = json.load(open(cfg_path))
        d = tempfile.mkdtemp()
        shutil.copy(model, os.path.join(d, "tokenizer.model"))
        shutil.copy(cfg_path, os.path.join(d, "tokenizer_config.json"))
        tok = AutoTokenizer.from_pretrained(d)  # the model's own tokenizer
        for k, msgs in enumerate(conversations()):
            try:
                enc = tok.apply_chat_template(msgs, tokenize=True)
            except Exception:  # e.g. mistral's template refuses a system turn
                continue
            ids = enc["input_ids"] if isinstance(enc, dict) or hasattr(enc, "keys") else enc
            ids = list(ids)
            rec = {"id": f"{name}-{k}", "messages": msgs}
            rendered = subprocess.run(
                [os.path.join(root, "bin", "ft-template"), "-q", "-t", cfg_path],
                input=json.dumps(rec, ensure_ascii=False) + "\n", capture_output=True,
                text=True, check=True).stdout
            segs = json.loads(rendered)["segments"]
            out.append({"id": rec["id"], "template": name, "legacy": cfg.get("legacy"), "messages": msgs,
                        "segments": segs, "hf_ids": ids})
    path = os.path.join(root, "tests", "data", "tokenize", "hf-llama2.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'{{"generator": "tests/hf/tokenizer_fixture.py", '
                f'"transformers": "{transformers.__version__}"}}\n')
        for r in out:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(out)} conversations")


main()
