# A UTF-8 BOM starts the input: accepted and not copied. Anywhere else it is
# invalid JSON.
printf '\xef\xbb\xbf{"id":"a"}\n{"id":"b"}\n' >bom.jsonl
ft-split -r 1 -o out.jsonl bom.jsonl
echo "status $?"
od -c out.jsonl | head -n 2
printf '{"id":"a"}\n\xef\xbb\xbf{"id":"b"}\n' >bom2.jsonl
ft-split -r 1 -o out2.jsonl bom2.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
