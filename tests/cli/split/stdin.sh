# Standard input: no FILE, "-", and after "--"; stdout as an output.
set -e
cp "$TESTDATA/split/users.jsonl" .
ft-split -q -r 1:1 -o a1 -o b1 users.jsonl
ft-split -q -r 1:1 -o a2 -o b2 <users.jsonl
cmp a1 a2 && cmp b1 b2 && echo "no FILE: stdin"
cat users.jsonl | ft-split -q -r 1:1 -o a3 -o b3 -
cmp a1 a3 && cmp b1 b3 && echo "-: stdin"
gzip -c users.jsonl | ft-split -q -r 1:1 -o a4 -o b4 -- -
cmp a1 a4 && cmp b1 b4 && echo "gzip after --: stdin"
ft-split -r 1:1 -o - -o b5 users.jsonl >a5
cmp a1 a5 && echo "-o -: stdout"
printf '{"id":1}\n{bad\n' | ft-split -o a6 -o b6 -o c6 || echo "status $?"
printf '{"id":1}\n\n{"x":2}\n' | ft-split --exact -o a7 -o b7 -o c7 || echo "status $?"
ls a6 a7 2>&1 | sed 's/^ls: //'
