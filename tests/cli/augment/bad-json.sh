# Malformed JSON input: file:line and column, exit 1, and with -o no output
# file and no temporary file left.
unset OPENAI_API_KEY OPENAI_BASE_URL
echo 'Rewrite: {{ text }}' >p.jinja
printf '{"id":"a","text":"x"}\n{"id":"b",}\n{"id":"c","text":"z"}\n' >bad.jsonl
ft-augment --dry-run -p p.jinja -m gpt --into text bad.jsonl
echo "status $?"
printf '{"id":"a","text":"x"}\n{"id":"b","text":"y"\n' >cut.jsonl
ft-augment -q --dry-run -p p.jinja -m gpt --into text cut.jsonl
echo "status $?"
printf '{"id":"a"} {"id":"b"}\n' >two.jsonl
ft-augment -q --dry-run -p p.jinja -m gpt --into text two.jsonl
echo "status $?"
printf '{"id":"a","text":"caf\xe9"}\n' >latin1.jsonl
ft-augment -q --dry-run -p p.jinja -m gpt --into text latin1.jsonl
echo "status $?"
printf 'lex\tlexicon\n' >lex.tsv
ft-augment -q --backend lexicon --lexicon lex.tsv --into text -o out.jsonl bad.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
