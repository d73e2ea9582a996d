# --pred/--ref name other fields (dotted paths); a dotted --by path.
printf '%s\n' \
 '{"out":{"text":"assistant: abcd"},"gold":"assistant: abcd","meta":{"m":"x"}}' \
 '{"out":{"text":"assistant: abce"},"gold":"assistant: abcd","meta":{"m":"y"}}' >f.jsonl
ft-eval --pred out.text --ref gold --by meta.m f.jsonl
echo "status $?"
ft-eval f.jsonl
echo "status $?"
