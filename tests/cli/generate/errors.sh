# bad records: file:line: reason, exit 1 and no output file; --skip-bad goes on
ft-train init --preset tiny --vocab-size 20000 -o m >/dev/null 2>&1 || exit
cp "$SHARED/tokenizers/chinese-20k.model" m/tokenizer.model
cat >in.jsonl <<'J'
{"id": "a", "segments": [{"text": "hello ", "template": true}, {"text": "world", "template": false}], "reference": "x"}
{"id": "b", "segments": 5}
{"id": "c"
{"id": "d", "segments": [{"text": "", "template": true}], "reference": "y"}
{"id": 5, "segments": [{"text": "again", "template": false}], "reference": {"k": [1, 2]}, "turn": 3}
J
ft-generate -q -m m -n 3 -o out.jsonl in.jsonl; echo "status $?"
ls out.jsonl 2>&1 | sed 's/.*: //'
ft-generate -q -m m -n 3 --skip-bad --bos keep --print-ids in.jsonl |
	sed -E 's/"prediction":"[^"]*"/"prediction":"..."/; s/"completion_ids":\[[0-9,]*\]/"completion_ids":[...]/'
echo "status $?"
ft-generate -q -m m -n 3 missing.jsonl; echo "status $?"
