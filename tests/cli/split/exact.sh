# --exact: group counts by largest remainder (3593 * 0.8 = 2874.4 -> 2875),
# the same from a file and from standard input, still one output per group.
set -e
in=$SHARED/data/hotel/dialogs.jsonl.gz
ft-split --exact -o train.jsonl -o val.jsonl -o test.jsonl "$in"
wc -l train.jsonl val.jsonl test.jsonl
gzip -dc "$in" | ft-split --exact -q -o t2 -o v2 -o s2
cmp train.jsonl t2 && cmp val.jsonl v2 && cmp test.jsonl s2 && echo "stdin: same split"
ft-split --exact -q -o t3 -o v3 -o s3 - <"$in"
cmp train.jsonl t3 && echo "gzip on stdin: same split"
ft-split --exact -s 7 -r 0.5:0:0.5 -o a -o b -o c "$in"
gzip -dc "$in" | sort >all.sorted
cat a c | sort | cmp - all.sorted && echo "every record kept"
for f in train val test; do grep -o '^{"id": "[^"]*"' $f.jsonl; done | sort | uniq -d | wc -l
