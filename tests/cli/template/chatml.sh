# OpenAI, ShareGPT and Alpaca records through a built-in template: data that
# looks like special tokens stays data; weight 0 turns are not trained.
ft-template -q -c chatml "$TESTDATA/template/conv.jsonl"
