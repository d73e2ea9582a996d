# bad recipes, options and inputs: a clear message, exit 1 (data) or 2 (usage)
ft-train init --preset tiny --vocab-size 64 -o m 2>/dev/null || exit
printf 'model = "m"\nbogus = 2\n' > r.toml
ft-train train -r r.toml; echo "exit $?"
printf 'model = "m"\nlr = "fast"\n' > r.toml
ft-train train --recipe=r.toml; echo "exit $?"
ft-train train --model m --train t.bin; echo "exit $?"
ft-train train --model m --train t.bin -o out --bogus 1; echo "exit $?"
ft-train train --model m --train t.bin -o out --lora-rank 0; echo "exit $?"
ft-train train --model m --train t.bin -o out --micro-batch; echo "exit $?"
ft-train train --model m --train missing.bin -o out 2>&1 | tail -n 1; echo "exit ${PIPESTATUS[0]}"
printf '{"id":"a","segments":[{"text":"hi there","train":false},{"text":" ok","train":true}]}\n' > in.jsonl
ft-tokenize -q -m $SHARED/tokenizers/llama2-32k.model -L 16 -o t.bin in.jsonl || exit
ft-train train --model m --train t.bin -o out 2>&1 | tail -n 1; echo "exit ${PIPESTATUS[0]}"
ft-train train --model nowhere --train t.bin -o out 2>&1 | tail -n 1; echo "exit ${PIPESTATUS[0]}"
