# Usage errors: a reason and a hint on stderr, exit 2, nothing written, nothing
# sent (every command would otherwise need a server).
unset OPENAI_API_KEY OPENAI_BASE_URL
printf '{"id":"a","text":"x","list":[1]}\n' >in.jsonl
echo '{{ text }}' >p.jinja
u=http://127.0.0.1:9/v1
t() { ft-augment --base-url "$u" --no-cache "$@" in.jsonl; echo "status $?"; }
t
t -m gpt --into text
t -p p.jinja --into text
t -p p.jinja -m gpt
t -p p.jinja -m gpt --into text --prob 1.5
t -p p.jinja -m gpt --into text --prob -0.1
t -p p.jinja -m gpt --into text --prob x
t -p p.jinja -m gpt --into text -n 0
t -p p.jinja -m gpt --into text -n 1001
t -p p.jinja -m gpt --into text -c 0
t -p p.jinja -m gpt --into text --timeout 0
t -p p.jinja -m gpt --into text --retries -1
t -p p.jinja -m gpt --into text --require a
t -p p.jinja -m gpt --into ''
t -p p.jinja -m gpt --into a..b
t -p p.jinja -m gpt --into text --base-url ftp://example.com/v1
t -p p.jinja -m gpt --into text --backend bogus
t --backend lexicon --into text
t --backend lexicon --lexicon lex.tsv -p p.jinja --into text
t --backend lexicon --lexicon lex.tsv --into text --lexicon-prob 2
t -p p.jinja -m gpt --into text -s -1
t -p p.jinja -m gpt --into text --max-line 12Q
t -p p.jinja -m gpt --into text --bogus
t -p p.jinja -m gpt --into text -x
ft-augment -p p.jinja -m gpt --into text -n; echo "status $?"
# not a usage error: a missing input file is exit 1
ft-augment -p p.jinja -m gpt --into text --dry-run in.jsonl missing.jsonl; echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
