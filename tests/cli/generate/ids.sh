# token ids in and out: greedy on a committed fixture model (transformers'
# ids are in tests/data/hf/llama/generate.json)
printf '%s\n' '{"id": "p0", "prompt_ids": [29], "source_id": "s"}' \
	'{"id": "p1", "prompt_ids": [93, 69, 16, 12, 82, 82, 60]}' >in.jsonl
ft-generate -q -m "$TESTDATA/hf/llama" --ids --print-ids -n 6 -b 2 in.jsonl
ft-generate -q -m "$TESTDATA/hf/llama" -a "$TESTDATA/hf/llama/peft" --ids --print-ids -n 6 in.jsonl
printf '%s\n' '{"id": "bad", "prompt_ids": [1, 128]}' | ft-generate -q -m "$TESTDATA/hf/llama" --ids -n 4
echo "status $?"
