# CRLF line ends are accepted; records are written without the CR, and the
# same split comes out as from LF input.
cp "$TESTDATA/split/users.jsonl" .
sed 's/$/\r/' users.jsonl >crlf.jsonl
ft-split -q -r 1:1 -o a1 -o b1 users.jsonl
ft-split -r 1:1 -o a2 -o b2 crlf.jsonl
echo "status $?"
cmp a1 a2 && cmp b1 b2 && echo "same records, no CR"
echo "lines with CR: $(cat a2 b2 | grep -c $'\r')"
