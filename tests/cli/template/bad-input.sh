# The bad-input corpus: each case is an error naming file and line (exit 1),
# never a crash; with --skip-bad the rest goes through and skips are counted.
t() { ft-template -q -c chatml "$@" > out.jsonl; echo "status $? lines $(wc -l < out.jsonl)"; }
ok='{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}'
printf '%s\n{"messages": [}\n' "$ok" > json.jsonl; t json.jsonl
printf '%s\n{"messages":"\xff"}\n' "$ok" > utf8.jsonl; t utf8.jsonl
printf '%s\n{"messages":"a\0b"}\n' "$ok" > nul.jsonl; t nul.jsonl
printf '\xef\xbb\xbf%s\n%s\n' "$ok" "$ok" > bom.jsonl; t bom.jsonl
printf '%s\n\xef\xbb\xbf%s\n' "$ok" "$ok" > bom2.jsonl; t bom2.jsonl
printf '%s\r\n%s\r\n' "$ok" "$ok" > crlf.jsonl; t crlf.jsonl
printf '\n%s\n\n   \n%s\n' "$ok" "$ok" > blank.jsonl; t blank.jsonl
printf '%s\n[1, 2]\n' "$ok" > array.jsonl; t array.jsonl
printf '{"id": "m"}\n' > missing.jsonl; t missing.jsonl
printf '{"id": "r", "messages": [{"content": "x"}]}\n' > norole.jsonl; t norole.jsonl
printf '{"id": "c", "messages": [{"role": "user"}]}\n' > nocontent.jsonl; t nocontent.jsonl
printf '{"id": "t", "messages": [{"role": "user", "content": 5}]}\n' > type.jsonl; t type.jsonl
printf '{"id": "u", "messages": [{"role": "robot", "content": "x"}]}\n' > role.jsonl; t role.jsonl
printf '{"id": "w", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 0.5}]}\n' > weight.jsonl; t weight.jsonl
printf '{"id": "n", "messages": [{"role": "user", "content": "only a question"}]}\n' > notrain.jsonl; t notrain.jsonl
printf '{"id": "e", "messages": []}\n' > empty.jsonl; t empty.jsonl
printf '%s\n%s\n' "$ok" "$ok" | gzip -c | head -c 30 > cut.jsonl.gz; t cut.jsonl.gz
# a 64 MiB line is read whole; a line over --max-line is an error
python3 -c "
import json
print(json.dumps({'messages': [{'role': 'user', 'content': 'x' * (64 << 20)}, {'role': 'assistant', 'content': 'ok'}]}))
" > big.jsonl
ft-template -q -c chatml big.jsonl | wc -c
t --max-line 1M big.jsonl
cat json.jsonl utf8.jsonl nul.jsonl bom2.jsonl array.jsonl missing.jsonl role.jsonl notrain.jsonl > mixed.jsonl
ft-template -c chatml --skip-bad mixed.jsonl | wc -l
