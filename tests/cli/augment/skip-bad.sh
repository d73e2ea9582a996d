# --skip-bad: bad records are reported, skipped and counted; the rest goes
# through (originals and variants in input order).
unset OPENAI_API_KEY OPENAI_BASE_URL
{
	printf '{"id":"r1","text":"hello world"}\n'
	printf '{"id":"r2",}\n'
	printf '[1]\n'
	printf '{"id":"r4","text":"caf\xe9"}\n'
	printf '\n'
	printf '{"id":"r6","text":"a big world"}\r\n'
	printf '{"text":"no id here"}\n'
	printf '{"id":7,"text":"hello again"}'
} >mixed.jsonl
printf 'hello\thi\n' >lex.tsv
ft-augment --skip-bad --backend lexicon --lexicon lex.tsv --lexicon-prob 1 --into text mixed.jsonl
echo "status $?"
ft-augment -q --skip-bad --backend lexicon --lexicon lex.tsv --lexicon-prob 1 --into text mixed.jsonl | wc -l
echo "status $?"
