# An output that cannot be written: exit 1, nothing left behind.
printf '{"prediction":"a","reference":"a"}\n' >p.jsonl
ft-eval -o nodir/report.txt p.jsonl
echo "status $?"
ft-eval --per-turn nodir/turns.jsonl -o r.txt p.jsonl
echo "status $?"
ft-eval -o /dev/full p.jsonl
echo "status $?"
ls -A | grep -v '^\.std' | grep -v jsonl || echo '(no files)'
