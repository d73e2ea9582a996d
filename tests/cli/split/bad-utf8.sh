# Invalid UTF-8 (a stray byte, an overlong form, a surrogate): the column of
# the first bad byte.
printf '{"id":"a"}\n{"id":"caf\xe9"}\n' >latin1.jsonl
ft-split -o a -o b -o c latin1.jsonl
echo "status $?"
printf '{"id":"\xc0\xaf"}\n' >overlong.jsonl
ft-split -o a -o b -o c overlong.jsonl
echo "status $?"
printf '{"id":"\xed\xa0\x80"}\n' >surrogate.jsonl
ft-split -o a -o b -o c surrogate.jsonl
echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
