# --skip-bad: every kind of bad record is reported and counted, the rest
# split as if the bad ones were not there.
{
	printf '{"id":"r1"}\n'
	printf '{"id":"r2",}\n'
	printf '{"id":"r3"}\n'
	printf '{"id":"\xff"}\n'
	printf '{"id":"r5"}\r\n'
	printf '{"id":"r6\0"}\n'
	printf '[1]\n'
	printf '{"other":1}\n'
	printf '{"id":[1]}\n'
	printf '\n'
	printf '{"id":"r11"}\n'
	printf '\xef\xbb\xbf{"id":"r12"}\n'
	printf '{"id":"r13"}'
} >mixed.jsonl
ft-split --skip-bad -r 1:1 -o a -o b mixed.jsonl
echo "status $?"
cat a b | sort
ft-split --skip-bad -q -r 1:1 -o a -o b mixed.jsonl
echo "status $?"
ft-split --skip-bad --exact -r 1:1 -o a -o b mixed.jsonl
echo "status $?"
