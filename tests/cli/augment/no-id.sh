# A selected record needs an "id" (a non-empty string or an integer): else
# FILE:LINE, exit 1; --skip-bad skips and counts; a record that is not
# selected needs none.
unset OPENAI_API_KEY OPENAI_BASE_URL
echo '{{ text }}' >p.jinja
printf '{"id":"a","text":"x"}\n{"text":"no id"}\n{"id":true,"text":"y"}\n{"id":"","text":"e"}\n{"id":null,"text":"n"}\n{"id":12,"text":"z"}\n' >in.jsonl
ft-augment --dry-run -p p.jinja -m gpt --into text in.jsonl
echo "status $?"
ft-augment --dry-run --skip-bad -p p.jinja -m gpt --into text in.jsonl
echo "status $?"
ft-augment -q --dry-run --select "text == 'z'" -p p.jinja -m gpt --into text in.jsonl
echo "status $?"
ft-augment -q --dry-run --prob 0 -p p.jinja -m gpt --into text in.jsonl
echo "status $?"
