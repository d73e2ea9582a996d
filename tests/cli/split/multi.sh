# Several inputs are read in order, as one stream.
set -e
cp "$TESTDATA/split/users.jsonl" .
head -n 30 users.jsonl >first.jsonl
tail -n 30 users.jsonl | gzip >second.jsonl.gz
ft-split -q -r 1:1 -o a1 -o b1 users.jsonl
ft-split -r 1:1 -o a2 -o b2 first.jsonl second.jsonl.gz
cmp a1 a2 && cmp b1 b2 && echo "two files = one"
