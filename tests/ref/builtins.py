"""Built-in templates render the same text as the models' own Hugging Face
chat templates (rendered by Python jinja2 as transformers sets it up)."""
import json
import subprocess
import sys
from jinja2.sandbox import ImmutableSandboxedEnvironment

shared, data = sys.argv[1], sys.argv[2]
ct = shared + "/data/chat-templates/"
# Meta-Llama-3-8B-Instruct's chat_template (not among the shared configs)
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}"
          "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
          "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
          "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")
CASES = [  # builtin, template source, bos, eos, text the builtin adds at the end
    ("chatml", ct + "yi-6b-chat.tokenizer_config.json", None, None, ""),
    ("llama2", ct + "llama-2-7b-chat-hf.tokenizer_config.json", None, None, ""),
    ("qwen2", ct + "qwen2.5-7b-instruct.tokenizer_config.json", None, None, ""),
    ("chatglm3", ct + "chatglm3-6b.tokenizer_config.json", None, None, "</s>"),
    ("llama3", LLAMA3, "<|begin_of_text|>", "<|eot_id|>", ""),
]


def env():
    e = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                      extensions=["jinja2.ext.loopcontrols"])
    e.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: \
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(msg):
        raise ValueError(msg)
    e.globals["raise_exception"] = raise_exception
    return e


def tok(v):
    return v["content"] if isinstance(v, dict) else (v or "")


records = [json.loads(l) for l in open(data, encoding="utf-8")]
passed = failed = 0
for name, src, bos, eos, tail in CASES:
    if src.endswith(".json"):
        cfg = json.load(open(src, encoding="utf-8"))
        src, bos, eos = cfg["chat_template"], tok(cfg.get("bos_token")), tok(cfg.get("eos_token"))
    tpl = env().from_string(src)
    out = subprocess.run(["ft-template", "-q", "--skip-bad", "-c", name, data],
                         capture_output=True, text=True, check=False)
    ours = {}
    for line in out.stdout.splitlines():
        s = json.loads(line)
        ours[s["id"]] = "".join(g["text"] for g in s["segments"])
    for r in records:
        try:
            want = tpl.render(messages=r["messages"], bos_token=bos, eos_token=eos,
                              add_generation_prompt=False) + tail
        except ValueError:
            want = None  # the template refuses it: so must the builtin
        got = ours.get(r["id"])
        if got == want:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {name} {r['id']}:\n  want {want!r}\n  got  {got!r}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
