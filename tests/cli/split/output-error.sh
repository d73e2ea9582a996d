# Outputs that cannot be created or written: exit 1, no partial files.
printf '{"id":"a"}\n' >in.jsonl
ft-split -o a -o nodir/b -o c in.jsonl
echo "status $?"
ft-split -r 1:1 -o a -o /dev/full in.jsonl
echo "status $?"
ft-split -r 1:1 -o a -o . in.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
