# Prompt template errors name template:line:col (syntax errors before any
# record is read; render errors also name the record's file:line), exit 1.
unset OPENAI_API_KEY OPENAI_BASE_URL
printf '{"id":"a","text":"x"}\n' >in.jsonl
printf 'line one\n{%% if x %%}\n{{ 1 + }}\n{%% endif %%}\n' >syntax.jinja
ft-augment --dry-run -p syntax.jinja -m gpt --into text in.jsonl
echo "status $?"
printf '{%% for m in messages %%}\n{{ m.content }}\n' >unclosed.jinja
ft-augment --dry-run -p unclosed.jinja -m gpt --into text in.jsonl
echo "status $?"
printf 'a\n{{ foo.bar.baz }}\n' >undef.jinja
ft-augment --dry-run -p undef.jinja -m gpt --into text in.jsonl
echo "status $?"
printf '{{ raise_exception("no way for " ~ id) }}\n' >raise.jinja
ft-augment --dry-run -p raise.jinja -m gpt --into text in.jsonl
echo "status $?"
printf '[{"role": "robot", "content": "x"}]\n' >role.jinja
ft-augment --dry-run -p role.jinja -m gpt --into text in.jsonl
echo "status $?"
ft-augment --dry-run -p missing.jinja -m gpt --into text in.jsonl
echo "status $?"
ft-augment --dry-run --select "text ==" -p role.jinja -m gpt --into text in.jsonl
echo "status $?"
