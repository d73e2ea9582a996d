# The table: every kind of turn, slot counts, BLEU, exact match, and --by
# breakdowns (numbers in numeric order, strings by text, a missing field as
# null); the same as JSON.
cat >pred.jsonl <<'JSON'
{"id":"h1#0","source_id":"h1","turn":0,"prediction":"search:\n{\"type\": \"舒适型\", \"facilities\": [\"wifi\", \"早餐服务\"], \"price_range_upper\": 400.0}","reference":"search:\n{\n    \"type\": \"舒适型\",\n    \"facilities\": [\n        \"wifi\"\n    ],\n    \"price_range_upper\": 400\n}"}
{"id":"h1#1","source_id":"h1","turn":1,"prediction":"assistant: 为您推荐如家酒店，价格300元。","reference":"assistant: 推荐您去如家酒店，价格是300元。"}
{"id":"h2#0","source_id":"h2","turn":0,"prediction":"search:\n{\"name\": \"北京","reference":"search:\n{\n    \"name\": \"北京饭店\"\n}"}
{"id":"h2#1","source_id":"h2","turn":1,"prediction":"好的","reference":"assistant: 好的"}
{"id":"h2#10","source_id":"h2","turn":10,"prediction":" assistant: 不客气，再见。 ","reference":"assistant: 不客气，再见。"}
{"id":"x","prediction":"user: hi","reference":"user: hi"}
JSON
ft-eval pred.jsonl
echo "status $?"
ft-eval --by turn --by source_id pred.jsonl
echo "status $?"
ft-eval --json --by source_id pred.jsonl
echo "status $?"
