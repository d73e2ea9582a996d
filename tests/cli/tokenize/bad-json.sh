printf '{"id":"a","segments":[{"text":"hi","train":true}]}\n{bad\n' > in.jsonl
ft-tokenize -m $SHARED/tokenizers/llama2-32k.model -L 64 -o out.bin in.jsonl; echo "exit $?"; ls
