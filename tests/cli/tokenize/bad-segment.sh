printf '{"id":"a","segments":[{"text":"hi","train":"yes"}]}\n' > in.jsonl
ft-tokenize -m $SHARED/tokenizers/llama2-32k.model -L 64 -o out.bin in.jsonl; echo "exit $?"; ls
