#!/bin/bash
# The CrossWOZ hotel-bot recipe end to end (make demo):
#
#   extract -> ft-augment -> ft-split -> ft-template -> ft-tokenize
#     -> [pretrain] -> ft-train (LoRA, full) -> ft-generate -> ft-eval -> report
#
# Data: the recipe's 3,593 hotel dialogs (../shared/data/hotel) and the hotel
# dialogs extracted from raw CrossWOZ val/test (../shared/data/crosswoz).
# Augmentation: offline lexicon paraphrases of 30% of the dialogs; with
# AUG_MODEL set (and OPENAI_BASE_URL / OPENAI_API_KEY), also the recipe's
# three model-written augmentations (examples/crosswoz/augment/).
# Model: with no BASE, a tiny model pretrained here on the training dialogs
# (loss on every token), then fine-tuned with LoRA and with full SFT; with
# BASE=/path/to/hf-model, that model is fine-tuned instead.
#
# Environment: OUT (default demo/), CONFIG=cpu|gpu (cpu: the few-minute demo
# recipes on a sample of the test prompts; gpu: recipes/crosswoz-gpu.toml on
# everything), BASE, TOKENIZER, EVAL_PROMPTS (test prompts generated: cpu
# 100, gpu all), MAX_NEW_TOKENS (default 160), STEPS (optimizer steps of
# every training run instead of the recipes'; for quick checks), AUG_MODEL,
# SHARED, BIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${SHARED:-$root/../shared}
bin=${BIN:-$root/bin}
out=${OUT:-$root/demo}
config=${CONFIG:-cpu}
base=${BASE:-}
max_new=${MAX_NEW_TOKENS:-160}
ex=$root/examples/crosswoz
case $config in
cpu) eval_prompts=${EVAL_PROMPTS:-100}; device=cpu ;;
gpu) eval_prompts=${EVAL_PROMPTS:-0}; device=cuda ;;
*) echo "run.sh: CONFIG must be cpu or gpu" >&2; exit 2 ;;
esac
if [ -n "$base" ]; then
	tok=${TOKENIZER:-$base/tokenizer.model}
else
	tok=${TOKENIZER:-$shared/tokenizers/chinese-20k.model}
fi
hotel=$shared/data/hotel/dialogs.jsonl.gz
for f in "$hotel" "$tok"; do
	[ -f "$f" ] || { echo "run.sh: $f not found" >&2; exit 1; }
done
mkdir -p "$out"
start=$(date +%s)
stage() { echo; echo "== $(( $(date +%s) - start ))s: $*"; }
# train RUN RECIPE MODEL: one ft-train run on the shards into $out/RUN
train() {
	local steps=()
	[ -n "${STEPS:-}" ] && steps=(--max-steps "$STEPS" --eval-every "$STEPS" --save-every "$STEPS")
	rm -rf "${out:?}/$1"
	"$bin/ft-train" train -r "$2" --model "$3" --train "$out/train.bin" --val "$out/val.bin" \
		--output "$out/$1" --log-every 10 "${steps[@]}"
}

stage "extract: raw CrossWOZ val/test -> hotel dialogs"
"$ex/extract" --crosswoz "$shared/data/crosswoz" -o "$out/crosswoz.jsonl"
{ gzip -dc "$hotel"; cat "$out/crosswoz.jsonl"; } >"$out/dialogs.jsonl"

stage "ft-augment: lexicon paraphrases of 30% of the dialogs"
"$bin/ft-augment" --backend lexicon --lexicon "$ex/lexicon.tsv" --into 'dialog.*.content' \
	--prob 0.3 --seed 0 --tag lex -o "$out/dialogs.aug.jsonl" "$out/dialogs.jsonl"
if [ -n "${AUG_MODEL:-}" ]; then
	stage "ft-augment: the recipe's model-written augmentations ($AUG_MODEL)"
	sys=$(cat "$ex/augment/system.txt")
	common=(-m "$AUG_MODEL" --system "$sys" --drop-original --cache "$out/aug-cache")
	"$bin/ft-augment" -p "$ex/augment/colloquial.jinja" "${common[@]}" --tag colloq \
		--into dialog.0.content --temperature 0.9 --max-tokens 200 \
		--rejects "$out/colloq.rejects.jsonl" "$out/dialogs.jsonl" >>"$out/dialogs.aug.jsonl"
	"$bin/ft-augment" -p "$ex/augment/followup.jinja" "${common[@]}" --tag follow \
		--prob 0.5 --json --append --into dialog --require role --require content \
		--temperature 0.7 --max-tokens 400 \
		--rejects "$out/follow.rejects.jsonl" "$out/dialogs.jsonl" >>"$out/dialogs.aug.jsonl"
	"$bin/ft-augment" -p "$ex/augment/shortname.jinja" "${common[@]}" --tag short \
		--prob 0.05 --seed 1 --json --into dialog --require role \
		--temperature 0.8 --max-tokens 1500 \
		--rejects "$out/short.rejects.jsonl" "$out/dialogs.jsonl" >>"$out/dialogs.aug.jsonl"
	"$bin/ft-augment" -p "$ex/augment/price.jinja" "${common[@]}" --tag price \
		--prob 0.1 --seed 2 --json --into dialog --require role \
		--temperature 0.8 --max-tokens 3000 \
		--rejects "$out/price.rejects.jsonl" "$out/dialogs.jsonl" >>"$out/dialogs.aug.jsonl"
fi

stage "ft-split: 8:1:1 by dialog (a variant goes with its source)"
"$bin/ft-split" -r 8:1:1 -s 0 -o "$out/dialogs.train.jsonl" -o "$out/dialogs.val.jsonl" \
	-o "$out/dialogs.test.jsonl" "$out/dialogs.aug.jsonl"

stage "ft-template: samples (every search and assistant turn trained), test prompts"
for part in train val; do
	"$bin/ft-template" -t "$ex/hotel.jinja" --keep source -o "$out/$part.jsonl" \
		"$out/dialogs.$part.jsonl"
done
# evaluation on the original test dialogs only, not on their paraphrases
grep -v '"aug_of":' "$out/dialogs.test.jsonl" >"$out/dialogs.test.orig.jsonl" || true
"$bin/ft-template" -t "$ex/hotel.jinja" --mode prompt --keep source \
	-o "$out/test.prompts.all.jsonl" "$out/dialogs.test.orig.jsonl"
if [ "$eval_prompts" -gt 0 ]; then
	head -n "$eval_prompts" "$out/test.prompts.all.jsonl" >"$out/test.prompts.jsonl"
else
	cp "$out/test.prompts.all.jsonl" "$out/test.prompts.jsonl"
fi

stage "ft-tokenize: packed shards of 3072 tokens ($(basename "$tok"))"
for part in train val; do
	"$bin/ft-tokenize" -m "$tok" -L 3072 --stats "$out/$part.stats.json" \
		-o "$out/$part.bin" "$out/$part.jsonl"
done
"$bin/ft-shard" verify "$out/train.bin" "$out/val.bin"

if [ -n "$base" ]; then
	model=$base
else
	stage "ft-train: pretrain a tiny model on the dialogs, loss on every token"
	vocab=$("$bin/ft-shard" info "$out/train.bin" | awk '$1 == "vocab_size" { print $2 }')
	"$bin/ft-train" init --preset tiny --vocab-size "$vocab" --seed 0 --force -o "$out/base"
	cp "$tok" "$out/base/tokenizer.model"
	train pretrain "$root/recipes/crosswoz-pretrain.toml" "$out/base"
	model=$out/pretrain/model
	cp "$tok" "$model/tokenizer.model"
fi

if [ "$config" = gpu ]; then
	stage "ft-train: LoRA on the hotel task (recipes/crosswoz-gpu.toml)"
	train lora "$root/recipes/crosswoz-gpu.toml" "$model"
	runs=(lora)
else
	stage "ft-train: LoRA on the hotel task (recipes/crosswoz-lora.toml)"
	train lora "$root/recipes/crosswoz-lora.toml" "$model"
	stage "ft-train: full fine-tuning on the hotel task (recipes/crosswoz-full.toml)"
	train full "$root/recipes/crosswoz-full.toml" "$model"
	runs=(lora full)
fi

for run in "${runs[@]}"; do
	stage "ft-generate ($run): $(wc -l <"$out/test.prompts.jsonl") test prompts, greedy"
	if [ "$run" = lora ]; then
		gen=(-m "$model" --adapter "$out/lora/adapter")
	else
		gen=(-m "$out/full/model")
	fi
	"$bin/ft-generate" "${gen[@]}" -t "$tok" --device "$device" --max-new-tokens "$max_new" \
		-o "$out/predictions.$run.jsonl" "$out/test.prompts.jsonl"
	stage "ft-eval ($run)"
	"$bin/ft-eval" --json -o "$out/eval.$run.json" "$out/predictions.$run.jsonl"
	"$bin/ft-eval" "$out/predictions.$run.jsonl"
done

stage "report"
"$ex/report" --runs "${runs[*]}" "$out"
echo
echo "report: $out/report.md and $out/report.html ($(( $(date +%s) - start ))s in all)"
