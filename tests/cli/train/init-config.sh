# --config copies the config as it is; a sliding window is ignored with a warning
cat >c.json <<'JSON'
{"architectures": ["MistralForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
 "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
 "vocab_size": 50, "sliding_window": 4096, "tie_word_embeddings": true}
JSON
ft-train init --config c.json -o out || exit
cmp c.json out/config.json && echo same config
wc -c <out/model.safetensors
