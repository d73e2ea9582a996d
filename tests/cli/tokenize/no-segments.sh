printf '{"id":"a","messages":[]}\n' > in.jsonl
ft-tokenize -m $SHARED/tokenizers/llama2-32k.model -L 64 -o out.bin in.jsonl
