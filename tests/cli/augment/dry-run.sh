# --dry-run prints one request body per variant and sends nothing (the base
# URL is a closed port): --system, sampling parameters, --api-seed + variant,
# --json-mode, a prompt rendering a message array, a blank prompt skipped.
unset OPENAI_API_KEY OPENAI_BASE_URL
u=http://127.0.0.1:9/v1
printf '{"id":"a","text":"hello","lang":"en"}\n{"id":"b","text":"","lang":"en"}\n{"id":"c","text":"你好","lang":"zh"}\n' >in.jsonl
printf '{%% if text %%}Rewrite ({{ variant + 1 }}/{{ variants }}): {{ text }}{%% endif %%}\n' >p.jinja
ft-augment --dry-run --base-url $u -p p.jinja -m gpt-x --into text -n 2 --system 'Be brief.' \
	--temperature 0.7 --top-p 0.95 --max-tokens 64 --api-seed 10 in.jsonl
echo "status $?"
cat >msgs.jinja <<'J'
[{"role": "system", "content": "Language: {{ lang }}"},
 {"role": "user", "content": {{ record.text|tojson }}}]
J
ft-augment -q --dry-run --base-url $u -p msgs.jinja -m gpt-x --json-mode --json --into out \
	--select "lang == 'zh'" in.jsonl
echo "status $?"
ls -A | grep -v '^\.std'
