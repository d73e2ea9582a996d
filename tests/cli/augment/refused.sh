# Connection refused (a closed port) is retried, then the variant is
# rejected: exit 3, the original still written, --rejects has the record.
unset OPENAI_API_KEY OPENAI_BASE_URL
printf '{"id":"a","text":"x"}\n{"id":"b","text":"y","group":"g"}\n' >in.jsonl
echo '{{ text }}' >p.jinja
ft-augment -q -p p.jinja -m gpt --into text --base-url http://127.0.0.1:9/v1 \
	--retries 1 --backoff 0.01 --no-cache --rejects rej.jsonl -o out.jsonl in.jsonl
echo "status $?"
cat out.jsonl
sed -E 's/"reason":"[^"]*"/"reason":"..."/' rej.jsonl
grep -c 'connect' rej.jsonl
ft-augment -q -p p.jinja -m gpt --into text --base-url http://127.0.0.1:9/v1 \
	--retries 0 --no-cache in.jsonl 2>err.txt
echo "status $?"
sed -E 's/ after [0-9]+ ms//' err.txt
