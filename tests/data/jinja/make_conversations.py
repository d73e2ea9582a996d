#!/usr/bin/env python3
"""Writes conversations.jsonl, the corpus that tests/ref/jinja2.sh renders
through every chat template in ../shared/data/chat-templates with both
ft-template and Python jinja2. Run it from this directory after editing."""
import json

U, A, S, T = "user", "assistant", "system", "tool"


def m(role, content, **kw):
    d = {"role": role, "content": content}
    d.update(kw)
    return d


def conv(id_, *msgs, **extra):
    rec = {"id": id_, "messages": list(msgs)}
    rec.update(extra)
    return rec


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather for a city — «quoted» \"text\" and 天气",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. 北京"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 16},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_hotels",
        "description": "Search hotels",
        "parameters": {
            "type": "object",
            "properties": {
                "price_range_lower": {"type": "number"},
                "facilities": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def call(name, args, id_="call_1"):
    return {"id": id_, "type": "function", "function": {"name": name, "arguments": args}}


long_text = "".join(
    f"Paragraph {i}: the quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。 🦊\n"
    for i in range(90))

records = [
    conv("single", m(U, "Hello"), m(A, "Hi there! How can I help?")),
    conv("system", m(S, "You are a helpful assistant."), m(U, "What is 2+2?"), m(A, "4")),
    conv("multi_system", m(S, "Be brief."), m(U, "Name a colour."), m(A, "Blue."),
         m(U, "Another one?"), m(A, "Green."), m(U, "And a third?"), m(A, "Red.")),
    conv("multi", m(U, "First question"), m(A, "First answer"), m(U, "Second question"),
         m(A, "Second answer")),
    conv("cjk_emoji", m(U, "你好，世界！こんにちは 안녕하세요"),
         m(A, "Hello 👋🏽 — déjà vu, naïve café, مرحبا, שלום, Ελληνικά 🎉👨‍👩‍👧")),
    conv("special_tokens", m(U, "Say </s> and <s> and <|im_end|><|im_start|>assistant\n"),
         m(A, "Sure: </s> <|eot_id|> [INST] [/INST] <end_of_turn><start_of_turn>model <|user|>"),
         m(U, "<bos><|begin_of_text|><|start_header_id|>system<|end_header_id|>"),
         m(A, "<|endoftext|><|assistant|>[gMASK]sop<<SYS>></s>")),
    conv("jinja_syntax", m(U, "Render {{ x }} and {% if true %}yes{% endif %} {# c #}"),
         m(A, "{%- raw -%}{{ messages }}{% endraw %} {{- '}}' -}} %}")),
    conv("backslash_quotes", m(U, "C:\\path\\to\\file.txt\\n and \\u0041 and \\\\"),
         m(A, "She said \"hi\" and it's 'fine' — `code` \\\" \\'")),
    conv("newlines", m(U, "line1\nline2\r\nline3\n\n\nline6\tTabbed"),
         m(A, "a\n\nb\n")),
    conv("outer_whitespace", m(S, "  \n system with spaces \t\n"), m(U, "   padded user   "),
         m(A, "\n\n  padded answer\n\n")),
    conv("empty_strings", m(U, ""), m(A, "ok"), m(U, "   "), m(A, "")),
    conv("whitespace_only", m(U, "\n"), m(A, " x ")),
    conv("long_content", m(S, "Summarise."), m(U, long_text), m(A, long_text[:3000])),
    conv("percent_and_braces", m(U, "100% sure %s %d %(name)s {0} {name}"),
         m(A, "{} {{}} }} {{ {%}")),
    conv("control_chars", m(U, "bell\u0007 esc\u001b nul-ish \u0001 del\u007f"),
         m(A, "ls\u2028ps\u2029 bom\ufeff zwj\u200d nbsp\u00a0 end")),
    conv("alternation_user_user", m(U, "one"), m(U, "two"), m(A, "three")),
    conv("starts_with_assistant", m(A, "I speak first"), m(U, "ok"), m(A, "fine")),
    conv("system_mid", m(U, "hi"), m(A, "hello"), m(S, "late system"), m(U, "q"), m(A, "a")),
    conv("weight_zero", m(U, "q1"), m(A, "skip me", weight=0), m(U, "q2"), m(A, "train me", weight=1)),
    conv("tool_call_llama", m(S, "You can call tools."), m(U, "Weather in Paris?"),
         m(A, None, tool_calls=[call("get_weather", {"city": "Paris", "unit": "celsius"})]),
         m(T, "{\"temperature\": 21.5, \"sky\": \"clear\"}", tool_call_id="call_1"),
         m(A, "It is 21.5 °C and clear in Paris."),
         tools=[WEATHER_TOOL]),
    conv("tool_call_no_system", m(U, "Find hotels in 北京 under 500"),
         m(A, None, tool_calls=[call("search_hotels",
                                     {"price_range_lower": 4.0, "facilities": ["wifi", "停车场"],
                                      "ratio": 1e-05, "big": 1e16, "huge": 12345678901234567890,
                                      "neg": -0.0, "flags": [True, False, None], "empty": {},
                                      "nested": {"b": [1, 2.5, []], "a": "</s>"}})]),
         m(T, "[{\"name\": \"Hotel A\", \"price\": 450}]"),
         m(A, "Hotel A costs 450."),
         tools=[SEARCH_TOOL, WEATHER_TOOL]),
    conv("qwen_multi_tool", m(S, "Tool user."), m(U, "Weather in Rome and Oslo?"),
         m(A, "Let me check.", tool_calls=[call("get_weather", {"city": "Rome"}, "c1"),
                                           call("get_weather", {"city": "Oslo", "days": 3}, "c2")]),
         m(T, "Rome: sunny"), m(T, "Oslo: snow <|im_end|>"),
         m(A, "Rome is sunny, Oslo has snow."),
         tools=[WEATHER_TOOL]),
    conv("tool_args_string", m(U, "Call it"),
         m(A, None, tool_calls=[{"type": "function",
                                 "function": {"name": "get_weather",
                                              "arguments": "{\"city\": \"Lyon\"}"}}]),
         m(T, "ok"), m(A, "Done."), tools=[WEATHER_TOOL]),
    conv("ipython_role", m(U, "Compute"),
         m(A, None, tool_calls=[call("get_weather", {"city": "Bern"})]),
         m("ipython", "result: 42"), m(A, "The answer is 42."), tools=[WEATHER_TOOL]),
    conv("tools_without_calls", m(S, "sys"), m(U, "Just chat"), m(A, "Chatting."),
         tools=[WEATHER_TOOL]),
    conv("tools_empty_list", m(U, "Hello"), m(A, "Hi"), tools=[]),
    conv("tool_message_no_tools", m(U, "q"), m(A, "calling"), m(T, "tool says hi"),
         m(A, "done")),
    conv("two_tool_calls_llama", m(U, "Two calls"),
         m(A, None, tool_calls=[call("get_weather", {"city": "A"}, "c1"),
                                call("get_weather", {"city": "B"}, "c2")]),
         m(A, "after"), tools=[WEATHER_TOOL]),
    conv("unicode_keys_and_escapes", m(U, "Ω≈ç√∫˜µ≤≥÷ 𝕳𝖊𝖑𝖑𝖔 \U0001F600 \\x41"),
         m(A, "Ünïcödé ŞŢŔĨŃĜ ǅ ﬁ ß ΐ İ")),
    conv("only_system_and_assistant", m(S, "System"), m(A, "Assistant without user")),
    conv("trailing_user", m(U, "q"), m(A, "a"), m(U, "follow-up without answer")),
    conv("multi_system_first_two", m(S, "sys one"), m(S, "sys two"), m(U, "q"), m(A, "a")),
]

with open("conversations.jsonl", "w", encoding="utf-8") as f:
    for r in records:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
