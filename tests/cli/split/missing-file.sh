# An input that cannot be read: exit 1, no outputs.
printf '{"id":"a"}\n' >in.jsonl
ft-split -o a -o b -o c in.jsonl nope.jsonl
echo "status $?"
mkdir d
ft-split -o a -o b -o c d
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
