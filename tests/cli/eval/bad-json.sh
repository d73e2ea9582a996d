# Bad records: file:line and reason, exit 1, no report and no output file.
printf '{"prediction":"a","reference":"a"}\n{"prediction":"a",}\n' >bad.jsonl
ft-eval -o r.txt bad.jsonl
echo "status $?"
printf '{"prediction":"a"}\n' >noref.jsonl
ft-eval noref.jsonl
echo "status $?"
printf '{"prediction":1,"reference":"a"}\n' >num.jsonl
ft-eval num.jsonl
echo "status $?"
printf '{"prediction":"search: {}","reference":"search: {oops"}\n' >label.jsonl
ft-eval label.jsonl
echo "status $?"
ft-eval missing.jsonl
echo "status $?"
ls -A | grep -v '^\.std' | grep -v jsonl || echo '(no files)'
