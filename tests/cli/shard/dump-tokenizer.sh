# dump refuses a model other than the shard's unless --force; a Chinese
# tokenizer's shard decodes with its own model.
. "$TESTS/cli/shard/setup.inc"
mkshard "$TESTS/cli/shard/sample.json" train.bin
ln -s "$SHARED/tokenizers/chinese-20k.model" chinese.model
ft-shard dump -m chinese.model train.bin
echo "status $?"
ft-shard dump --force -m "$SHARED/tokenizers/chinese-20k.model" --rows 0:1 train.bin >/dev/null
echo "status $?"
cat >zh.json <<'JSON'
{"model": "CHINESE", "seq_len": 24, "rows": [
 {"docs": [{"sample": 7, "parts": [{"text": "用户：今天天气怎么样？"}, {"text": "助手：晴天。", "train": true}]}]}]}
JSON
mkshard zh.json zh.bin
ft-shard dump -m "$SHARED/tokenizers/chinese-20k.model" zh.bin
echo "status $?"
ft-shard dump -m "$SHARED/tokenizers/chinese-20k.model" --format jsonl zh.bin | sed -E 's/,"ids".*/}/'
ft-shard dump -m nope.model zh.bin
echo "status $?"
