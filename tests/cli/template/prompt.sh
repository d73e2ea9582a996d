# --mode prompt: one prompt per trained span, ending where generation starts.
ft-template -q -c llama2 --mode prompt --keep group "$TESTDATA/template/conv.jsonl"
