# Empty and whitespace-only lines are not records, but they count as lines.
printf '{"id":"a"}\n\n   \n\t\r\n{"id":"b"}\n\n{"id":\n' >blank.jsonl
ft-split -r 1 -o out.jsonl blank.jsonl
echo "status $?"
printf '\n\n{"id":"a"}\n \n{"id":"b"}' >noeol.jsonl
ft-split -r 1 -o out.jsonl noeol.jsonl
echo "status $?"
cat out.jsonl
printf '\n \n' | ft-split -r 1 -o empty.jsonl
echo "status $?"
wc -c <empty.jsonl
