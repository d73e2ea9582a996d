# merge: an index over shards and indexes, paths relative to the index;
# info and verify read it; mismatches and repeats are refused, no file left.
. "$TESTS/cli/shard/setup.inc"
mkdir -p data/a data/b out
mkshard "$TESTS/cli/shard/sample.json" data/a/train-00000.bin
mkshard "$TESTS/cli/shard/sample.json" data/a/train-00001.bin
mkshard "$TESTS/cli/shard/sample.json" data/b/train-00000.bin
ft-shard merge -o data/a/index.json data/a/train-00000.bin data/a/train-00001.bin
echo "status $?"
cat data/a/index.json
ft-shard merge -o out/all.json data/a/index.json data/b/train-00000.bin
echo "status $?"
cat out/all.json
ft-shard verify out/all.json
echo "status $?"
ft-shard info out/all.json
ft-shard dump -m "$SHARED/tokenizers/llama2-32k.model" --rows 7:8 out/all.json
echo "status $?"
ft-shard merge -o out/twice.json data/a/index.json data/a/train-00001.bin
echo "status $?"
sed 's/"seq_len": 40/"seq_len": 41/' "$TESTS/cli/shard/sample.json" >s41.json
mkshard s41.json data/b/s41.bin
ft-shard merge -o out/mixed.json data/a/index.json data/b/s41.bin
echo "status $?"
ls out
