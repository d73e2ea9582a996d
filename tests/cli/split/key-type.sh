# A group key must be a string or a number.
for v in '[1]' '{"a":1}' true null; do
	printf '{"id":%s}\n' "$v" >t.jsonl
	ft-split -o a -o b -o c t.jsonl
	echo "status $?"
done
printf '{"k":{"x":false}}\n' >k.jsonl
ft-split -k k.x -o a -o b -o c k.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
