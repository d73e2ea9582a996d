# dump: rows decoded back to text, trained text in brackets; --rows; jsonl.
. "$TESTS/cli/shard/setup.inc"
mkshard "$TESTS/cli/shard/sample.json" train.bin
m=$SHARED/tokenizers/llama2-32k.model
ft-shard dump -m "$m" train.bin
echo "status $?"
ft-shard dump -m "$m" --rows 1:2 train.bin
echo "status $?"
ft-shard dump -m "$m" --rows=2 --format jsonl train.bin
echo "status $?"
ft-shard dump -m "$m" --rows :1 --format=jsonl train.bin
echo "status $?"
ft-shard dump -m "$m" --rows 3: train.bin
echo "status $?"
ft-shard dump -m "$m" --rows 4: train.bin
echo "status $?"
