# -k with a dotted path: records of one user stay together; a number key
# groups the same way as its string form would not need to.
set -e
cp "$TESTDATA/split/users.jsonl" .
ft-split -k meta.user -s 2 -r 1:1:1 -o a.jsonl -o b.jsonl -o c.jsonl users.jsonl
for f in a b c; do grep -o '"user":"[^"]*"' $f.jsonl | sort -u >$f.users; done
echo "users in two outputs: $(sort a.users b.users c.users | uniq -d | wc -l)"
cat a.users b.users c.users | wc -l
ft-split -k meta.uid -r 1:1 -o n1 -o n2 users.jsonl
for f in n1 n2; do grep -o '"uid":[0-9]*' $f | sort -u >$f.u; done
echo "uids in both: $(sort n1.u n2.u | uniq -d | wc -l)"
ft-split -k meta.tags.0 -r 1:1 -o t1 -o t2 users.jsonl
