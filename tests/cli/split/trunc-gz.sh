# A truncated gzip stream is an error even after good records, --skip-bad or
# not: what is missing cannot be skipped. Corrupt data and trailing garbage
# likewise.
cp "$TESTDATA/split/users.jsonl" .
gzip -c users.jsonl >full.gz
head -c $(($(wc -c <full.gz) / 2)) full.gz >cut.gz
ft-split -o a -o b -o c cut.gz
echo "status $?"
ft-split --skip-bad -o a -o b -o c cut.gz
echo "status $?"
{ cat full.gz; printf 'junk'; } >junk.gz
ft-split -o a -o b -o c junk.gz
echo "status $?"
cat full.gz full.gz >twice.gz
ft-split -q -r 1 -o twice.jsonl twice.gz
echo "status $?"
cat users.jsonl users.jsonl | cmp - twice.jsonl && echo "concatenated members read"
ls -A | grep -v '^\.std' || echo '(no files)'
