printf '{"id":%d,"text":"sample number %d with some text"}\n' $(seq 1 40 | sed 's/.*/& &/') > in.jsonl
ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 32 --pad --shard-tokens 256 -o data/train.json in.jsonl 2>&1 || mkdir -p data
ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 32 --pad --shard-tokens 256 -o data/train.json in.jsonl && ls data && ft-shard verify data/train.json
