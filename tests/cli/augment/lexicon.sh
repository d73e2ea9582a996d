# The lexicon backend on a tiny lexicon: no network, the same output on every
# run, '*' paths, unchanged variants not written, aug_model "lexicon".
unset OPENAI_API_KEY OPENAI_BASE_URL
printf '# greetings\nhello\thi\they there\n\nworld\tearth\tglobe\nbig world\thuge world\n' >lex.tsv
cat >in.jsonl <<'JSONL'
{"id": "d1", "group": "g", "turns": [{"role": "user", "content": "hello world"}, {"role": "search", "arguments": {"q": "hello", "n": 4.0}}, {"role": "assistant", "content": "a big world, hello"}]}
{"id": "d2", "turns": [{"role": "user", "content": "plain text only"}]}
{"id": 3, "turns": [{"role": "user", "content": "hey there, world"}, {"role": "assistant"}]}
JSONL
ft-augment --backend lexicon --lexicon lex.tsv -n 3 --seed 5 --lexicon-prob 1 --into 'turns.*.content' in.jsonl >a.jsonl
echo "status $?"
cat a.jsonl
ft-augment -q --backend lexicon --lexicon lex.tsv -n 3 --seed 5 --lexicon-prob 1 --into 'turns.*.content' -c 1 in.jsonl | cmp - a.jsonl && echo "same output"
ft-augment -q --backend lexicon --lexicon lex.tsv -n 2 --seed 9 --into 'turns.0.content' --drop-original in.jsonl
echo "status $?"
printf 'lonely\n' >bad.tsv
ft-augment -q --backend lexicon --lexicon bad.tsv --into text in.jsonl
echo "status $?"
ft-augment -q --backend lexicon --lexicon nope.tsv --into text in.jsonl
echo "status $?"
