# a preset model: config.json as transformers writes it, fp32 weights
ft-train init --preset tiny --vocab-size 64 --seed 3 -o m || exit
cat m/config.json
wc -c <m/model.safetensors
ls -a m
