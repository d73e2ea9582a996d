# bench/gpu/common.sh: sourced by bench/gpu/recompute and bench/gpu/nccl.
# setup_run CONFIG.json: in $work, a model made by make_model.py with the
# chinese-20k tokenizer and train.bin from the first 800 hotel dialogs at
# $seq tokens. measure NAME CMD...: run ft-train (CMD) writing run-NAME,
# sampling GPU memory every 0.1 s, then print tokens/s over steps 5..end,
# the peak memory above idle and the first losses.
setup_run() {
	"$python" "$root/bench/gpu/make_model.py" "$1" base 0 2>/dev/null
	cp "$1" base/config.json
	cp "$shared/tokenizers/chinese-20k.model" base/tokenizer.model
	zcat "$shared/data/hotel/dialogs.jsonl.gz" | sed -n 1,800p >dialogs.jsonl
	"$bin/ft-template" -q -t "$root/examples/crosswoz/hotel.jinja" -o samples.jsonl dialogs.jsonl
	"$bin/ft-tokenize" -q -m base/tokenizer.model -L "$seq" -o train.bin samples.jsonl
}

query() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 "$@"; }

measure() {
	local name=$1 idle mp st=0
	shift
	idle=$(query)
	# exec: $! is nvidia-smi itself, so the kill below stops it
	(exec nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 \
		>mem.txt 2>/dev/null) &
	mp=$!
	"$@" >"run-$name.log" 2>&1 || st=$?
	kill "$mp"
	wait "$mp" 2>/dev/null || true
	"$python" - "$name" "$st" "$idle" <<'PY'
import json, sys
name, st, idle = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = [json.loads(l) for l in open(f"run-{name}/metrics.jsonl") if '"loss"' in l]
a, b = r[3], r[-1]
tok = sum(x["tokens"] for x in r[4:])
peak = max(int(x) for x in open("mem.txt") if x.strip())
print(f"{name} exit {st}: {tok / (b['elapsed_s'] - a['elapsed_s']):.0f} tok/s "
      f"(steps 5-{len(r)}), peak {(peak - idle) / 1024:.2f} GiB, losses "
      f"{[round(x['loss'], 4) for x in r[:4]]} .. {round(r[-1]['loss'], 4)}")
PY
}
