# A 64 MiB record is a record; --max-line turns it into an error, which
# --skip-bad skips, going on with the next line.
{ printf '{"id":"big","text":"'; head -c 67108864 /dev/zero | tr '\0' x; printf '"}\n{"id":"small"}\n'; } >big.jsonl
ft-split -r 1:1 -o a -o b big.jsonl
echo "status $?"
cat a b | wc -c
ft-split -r 1:1 --max-line 1M -o a2 -o b2 big.jsonl
echo "status $?"
ft-split -r 1 --max-line 1M --skip-bad -o c big.jsonl
echo "status $?"
cat c
