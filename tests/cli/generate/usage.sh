# usage errors exit 2 before anything is loaded
ft-generate; echo "status $?"
ft-generate -m m --top-k 5 x.jsonl; echo "status $?"
ft-generate -m m --bos=maybe; echo "status $?"
ft-generate -m m --batch 0; echo "status $?"
ft-generate -m m --stop ''; echo "status $?"
ft-generate -m m --frobnicate; echo "status $?"
ft-generate -m m -T t.jinja; echo "status $?"
ft-generate -m m -i -o out.jsonl; echo "status $?"
# ... or once the model says so
ft-train init --preset tiny --vocab-size 20000 -o m >/dev/null 2>&1
cp "$SHARED/tokenizers/chinese-20k.model" tok.model
ft-generate -m m -t tok.model -n 4096 </dev/null; echo "status $?"
ft-generate -m m --eot "<nope>" -t tok.model </dev/null; echo "status $?"
ft-generate -m m </dev/null; echo "status $?"
exit 0
