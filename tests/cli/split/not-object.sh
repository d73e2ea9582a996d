# A record must be a JSON object.
printf '{"id":"a"}\n["id","b"]\n' >arr.jsonl
ft-split -o a -o b -o c arr.jsonl
echo "status $?"
printf '"id"\n' >str.jsonl
ft-split -o a -o b -o c str.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
