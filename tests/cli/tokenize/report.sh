printf '{"id":"long","segments":[{"text":"a b c d e f g h i j k l m n o p","train":false},{"text":" q r s","train":true}]}\n{"id":"none","segments":[{"text":"x","train":false}]}\n' > in.jsonl
for p in '--truncate right' '--truncate left' --drop --split-long; do ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 8 $p --report rep.jsonl -o out.bin in.jsonl; echo "$p:"; cat rep.jsonl; done
