# An index whose shard was rewritten, or lost, is refused.
. "$TESTS/cli/shard/setup.inc"
mkshard "$TESTS/cli/shard/sample.json" a.bin
mkshard "$TESTS/cli/shard/sample.json" b.bin
ft-shard merge -o idx.json a.bin b.bin 2>/dev/null
sed 's/"rows": \[/"rows": [{"docs": [{"sample": 9, "tokens": [1, 2], "mask": [1, 1]}]},/' "$TESTS/cli/shard/sample.json" >more.json
mkshard more.json b.bin
ft-shard verify idx.json
echo "status $?"
rm b.bin
ft-shard info idx.json
echo "status $?"
printf '{"format": "ft-shard-index", "version": 1}\n' >bad.json
ft-shard verify bad.json
echo "status $?"
