# No group key: an error naming what was looked for; a null group falls back
# to the id.
printf '{"id":"a"}\n{"name":"b"}\n' >nokey.jsonl
ft-split -o a -o b -o c nokey.jsonl
echo "status $?"
printf '{"group":null,"id":"a"}\n{"group":"g","id":"b"}\n' >null.jsonl
ft-split -r 1 -o out.jsonl null.jsonl
echo "status $?"
printf '{"meta":{"user":"u"}}\n{"meta":{}}\n' >path.jsonl
ft-split -k meta.user -o a -o b -o c path.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
