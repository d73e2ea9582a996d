printf '{"id":"a","segments":[{"text":"hi","train":true}]}\n[1]\n{"id":"c","text":5}\n{"text":"ok"}\n' > in.jsonl
ft-tokenize -m $SHARED/tokenizers/llama2-32k.model -L 64 --skip-bad --stats st.json -o out.bin in.jsonl && ls && grep -o '"skipped":[0-9]*' st.json
