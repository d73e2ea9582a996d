# torchrun-style starts (RANK, WORLD_SIZE, ...) without an MPI launcher: CPU
# ranks have no transport and are refused; one CPU rank is a plain run; bad
# values are usage errors
ft-train init --preset tiny --vocab-size 32000 -o m 2>/dev/null || exit
printf '{"id":"a","segments":[{"text":"hi there","train":false},{"text":" ok","train":true}]}\n' > in.jsonl
ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 16 -o t.bin in.jsonl 2>/dev/null || exit
RANK=0 WORLD_SIZE=2 ft-train train --model m --train t.bin -o out; echo "exit $?"
RANK=2 WORLD_SIZE=2 ft-train train --model m --train t.bin -o out; echo "exit $?"
WORLD_SIZE=2 ft-train train --model m --train t.bin -o out; echo "exit $?"
RANK=0 WORLD_SIZE=two ft-train train --model m --train t.bin -o out; echo "exit $?"
RANK=0 WORLD_SIZE=1 ft-train train --model m --train t.bin -o out --max-steps 1 2>/dev/null
echo "exit $? $(wc -l < out/metrics.jsonl) metrics line"
ls out/checkpoints
