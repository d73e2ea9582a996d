# A Hugging Face tokenizer_config.json without generation blocks: assistant
# replies and the end-of-turn token after them are trained.
ft-template -c llama3 -q "$TESTDATA/template/conv.jsonl" > builtin.jsonl
ft-template -t "$SHARED/data/chat-templates/qwen2.5-7b-instruct.tokenizer_config.json" \
	"$TESTDATA/template/conv.jsonl"
