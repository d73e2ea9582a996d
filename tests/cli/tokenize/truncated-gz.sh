seq 1 20000 | sed 's/.*/{"text":"sample &"}/' | gzip | head -c 2000 > in.jsonl.gz
ft-tokenize -m $SHARED/tokenizers/llama2-32k.model -L 64 -o out.bin in.jsonl.gz; echo "exit $?"; ls
