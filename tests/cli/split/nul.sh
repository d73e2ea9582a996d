# A NUL byte is an error with its column, also inside a string.
printf '{"id":"a"}\n{"id":"b\0c"}\n' >nul.jsonl
ft-split -o a -o b -o c nul.jsonl
echo "status $?"
printf '\0{"id":"a"}\n' >nul2.jsonl
ft-split -o a -o b -o c nul2.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
