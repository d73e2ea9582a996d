# a recipe file with command-line overrides: the resolved recipe says which won
ft-train init --preset tiny --vocab-size 32000 -o m 2>/dev/null || exit
printf '{"id":"a","segments":[{"text":"hi there","train":false},{"text":" ok then","train":true}]}\n' > in.jsonl
ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 16 -o t.bin in.jsonl || exit
cat > r.toml <<'TOML'
# tiny run
model = "m"
train = 't.bin'
output = "run"
method = "lora"
lora_targets = ["q", "v"]
lr = 1e-3
max_steps = 3
TOML
ft-train train -r r.toml --lr 2e-3 --lora-rank 4 --threads 1 2>/dev/null || exit
grep -E '^(model|method|lora_rank|lora_targets|lr|max_steps) ' run/recipe.toml
wc -l < run/metrics.jsonl
ls run run/adapter
