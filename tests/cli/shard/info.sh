# info: header fields and statistics, as text and as JSON.
. "$TESTS/cli/shard/setup.inc"
mkshard "$TESTS/cli/shard/sample.json" train.bin
ft-shard info train.bin
echo "status $?"
ft-shard info --json train.bin
echo "status $?"
ft-shard info train.bin missing.bin
echo "status $?"
