cp $SHARED/tokenizers/llama2-32k.model tok.model
printf '{"text":"hi"}\n' | ft-tokenize -m tok.model -L 64 --eot '<|nope|>' -o out.bin
