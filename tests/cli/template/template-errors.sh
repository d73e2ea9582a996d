# Template errors name template:line:col; raise_exception's message is kept.
ok='{"id":"r1","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}'
echo "$ok" > in.jsonl
printf 'line one\n{%% if x %%}\n{{ 1 + }}\n{%% endif %%}\n' > syntax.jinja
ft-template -t syntax.jinja in.jsonl; echo "status $?"
printf '{%% for m in messages %%}\n{{ m.content }}\n' > unclosed.jinja
ft-template -t unclosed.jinja in.jsonl; echo "status $?"
printf '{%% generation %%}{{ x | nosuchfilter }}{%% endgeneration %%}' > filter.jinja
ft-template -t filter.jinja in.jsonl; echo "status $?"
printf '{{ raise_exception("roles must alternate") }}' > raise.jinja
ft-template -t raise.jinja in.jsonl; echo "status $?"
printf '{%% generation %%}{{ messages[0].content.nope.deeper }}{%% endgeneration %%}' > undef.jinja
ft-template -t undef.jinja in.jsonl; echo "status $?"
ft-template -t missing.jinja in.jsonl; echo "status $?"
