# Malformed JSON: file:line and column, exit 1, and no output at all.
printf '{"id":"a"}\n{"id":"b",}\n{"id":"c"}\n' >bad.jsonl
ft-split -o a -o b -o c bad.jsonl
echo "status $?"
printf '{"id":"a"}\n{"id":"b"\n' >cut.jsonl
ft-split -o a -o b -o c cut.jsonl
echo "status $?"
printf '{"id":"a"} {"id":"b"}\n' >two.jsonl
ft-split -o a -o b -o c two.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
