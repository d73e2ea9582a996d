# -o writes atomically: a run that fails leaves no file, and no temp file.
printf '{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}\n{"x": \n' > in.jsonl
ft-template -q -c chatml -o out.jsonl in.jsonl
echo "status $?"
ls -A | grep -v '^\.std'
head -n 1 in.jsonl | ft-template -q -c chatml -o out.jsonl
echo "status $?"
wc -l < out.jsonl
