# --skip-bad: bad records are reported, counted and left out; -q keeps quiet.
{
	printf '{"id":"1","prediction":"assistant: 好","reference":"assistant: 好"}\n'
	printf '{"id":"2","prediction":"x",}\n'
	printf '[1]\n'
	printf '{"id":"4","prediction":"\xff","reference":"x"}\n'
	printf '{"id":"5","reference":"x"}\n'
	printf '{"id":"6","prediction":"search: {}","reference":"search: none"}\n'
	printf '{"id":"7","prediction":"x","reference":"x"}\n'
} >mixed.jsonl
ft-eval --skip-bad --json mixed.jsonl
echo "status $?"
ft-eval --skip-bad -q mixed.jsonl >/dev/null
echo "status $?"
