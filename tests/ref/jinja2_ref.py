"""The reference: Python jinja2 set up as Hugging Face transformers'
apply_chat_template sets it up (transformers/utils/chat_template_utils.py):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
loopcontrols extension, {% generation %} (transformers' AssistantTracker,
which renders its body unchanged), a tojson filter that is json.dumps with
ensure_ascii=False, and the globals raise_exception and strftime_now. For
reproducible output strftime_now reads SOURCE_DATE_EPOCH and uses UTC, as
ft's engine does."""
import json
import os
from datetime import datetime, timezone

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTracker(Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde:
        return datetime.fromtimestamp(int(sde), timezone.utc).strftime(fmt)
    return datetime.now().strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


ENV = make_env()


def render(source, variables):
    """(True, text) or (False, (exception type name, message))."""
    try:
        return True, ENV.from_string(source).render(**variables)
    except RecursionError:
        return False, ("RecursionError", "maximum recursion depth exceeded")
    except Exception as e:  # noqa: BLE001 - any failure is the reference's answer
        return False, (type(e).__name__, str(e))


def config_token(cfg, key):
    t = cfg.get(key)
    if isinstance(t, dict):
        t = t.get("content")
    return t if isinstance(t, str) else None


def chat_template(cfg):
    ct = cfg.get("chat_template")
    if isinstance(ct, list):
        ct = next((e["template"] for e in ct if e.get("name") == "default"), None)
    return ct


def special_tokens(cfg):
    """transformers' special_tokens_map: the tokens that are set, as strings."""
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token",
                "mask_token"):
        t = config_token(cfg, key)
        if t is not None:
            out[key] = t
    extra = cfg.get("additional_special_tokens")
    if isinstance(extra, list) and extra:
        out["additional_special_tokens"] = [
            e.get("content") if isinstance(e, dict) else e for e in extra]
    return out


def render_chat(cfg, record):
    """apply_chat_template(messages, tools=..., tokenize=False, add_generation_prompt=False)"""
    variables = dict(special_tokens(cfg))
    variables.update(messages=record["messages"], tools=record.get("tools"), documents=None,
                     add_generation_prompt=False)
    return render(chat_template(cfg), variables)
