# Ratio forms: 8:1:1 and 0.8:0.1:0.1 are the same split; a zero part gets
# nothing; one part takes all.
set -e
cp "$TESTDATA/split/users.jsonl" .
ft-split -q -r 8:1:1 -o a1 -o b1 -o c1 users.jsonl
ft-split -q -r 0.8:0.1:0.1 -o a2 -o b2 -o c2 users.jsonl
cmp a1 a2 && cmp b1 b2 && cmp c1 c2 && echo "8:1:1 = 0.8:0.1:0.1"
ft-split -r 1:0:1 -o x -o y -o z users.jsonl
ft-split -r 3 -o all users.jsonl
cmp all users.jsonl && echo "one part: a copy"
ft-split -r 1:1:1 -o kept -o /dev/null -o /dev/null users.jsonl
