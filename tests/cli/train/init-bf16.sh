ft-train init --preset tiny --vocab-size 64 --dtype bf16 -o m || exit
wc -c <m/model.safetensors
