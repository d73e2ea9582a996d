# The reference recipe: hotel dialogs split 8:1:1 by dialog id. Every record
# lands in exactly one output, unchanged; no group spans two outputs; the
# split is a function of the seed.
set -e
in=$SHARED/data/hotel/dialogs.jsonl.gz
ft-split -r 8:1:1 -o train.jsonl -o val.jsonl -o test.jsonl "$in"
wc -l train.jsonl val.jsonl test.jsonl

gzip -dc "$in" | sort >all.sorted
cat train.jsonl val.jsonl test.jsonl | sort | cmp - all.sorted && echo "every record kept, byte for byte"
for f in train val test; do grep -o '^{"id": "[^"]*"' $f.jsonl | sort -u >$f.ids; done
echo "groups in two outputs: $(sort train.ids val.ids test.ids | uniq -d | wc -l)"
# within each output the input order is kept
for f in train val test; do
	grep -o '^{"id": "[^"]*"' $f.jsonl >$f.order
	gzip -dc "$in" | grep -o '^{"id": "[^"]*"' | grep -Fxf $f.order | cmp - $f.order
done && echo "input order kept"

ft-split -q -o t2 -o v2 -o s2 "$in"
cmp train.jsonl t2 && cmp val.jsonl v2 && cmp test.jsonl s2 && echo "same seed, same split"
ft-split -s 42 -o t3 -o v3 -o s3 "$in"
cmp -s train.jsonl t3 || echo "seed 42 splits differently"
ls -A | grep tmp || echo "no temporary files left"
