# --per-turn: one line per record with its scores; -o FILE takes the report.
printf '%s\n' \
 '{"id":"a","prediction":"search:\n{\"type\": \"a\", \"x\": null}","reference":"search:\n{\"type\": \"a\"}"}' \
 '{"id":"b","prediction":"assistant: 你好","reference":"assistant: 你好"}' \
 '{"id":"c","prediction":"你好","reference":"assistant: 你好"}' \
 '{"prediction":"","reference":""}' >p.jsonl
ft-eval --per-turn - -o report.txt p.jsonl
echo "status $?"
cat report.txt
ft-eval --per-turn turns.jsonl --json p.jsonl
echo "status $?"
cat turns.jsonl
