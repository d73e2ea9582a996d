# merge joins what ft-tokenize made of each input file (docs/data-parallel.md):
# in the order given, an empty shard (an empty split) included, the same
# totals as one run over all files; a file whose job failed stops it; a
# rerun job after the merge makes the index stale; indexes merge again.
M=$SHARED/tokenizers/chinese-20k.model
printf '{"text": "%s"}\n' "你好，我想找一个酒店" "有叫醒服务的经济型酒店" >p0.jsonl
: >p1.jsonl
printf '{"text": "%s"}\n' "评分4分以上" "谢谢" "再见" >p2.jsonl
for p in p0 p1 p2; do
	ft-tokenize -q -m "$M" -L 16 -o $p.bin $p.jsonl || echo "tokenize $p failed"
done
cat p0.jsonl p1.jsonl p2.jsonl | ft-tokenize -q -m "$M" -L 16 -o all.bin
ft-shard merge -o idx.json p0.bin p1.bin p2.bin
echo "status $?"
ft-shard info idx.json all.bin | grep -E '^[^ ]|rows|docs|trained|pad  '
ft-shard dump -m "$M" idx.json
ft-shard merge -o missing.json p0.bin p3.bin p2.bin
echo "status $?"
mkdir -p up
ft-shard merge -o up/top.json idx.json all.bin
echo "status $?"
cat up/top.json
printf '{"text": "%s"}\n' "评分4分以上" >p2.jsonl
ft-tokenize -q -m "$M" -L 16 -o p2.bin p2.jsonl
ft-shard verify idx.json
echo "status $?"
ls
