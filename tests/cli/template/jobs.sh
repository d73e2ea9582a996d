# The output does not depend on the number of threads.
zcat "$SHARED/data/hotel/dialogs.jsonl.gz" | head -n 700 > d.jsonl
ft-template -q -j 1 -t "$FT_ROOT/examples/crosswoz/hotel.jinja" d.jsonl > j1.jsonl
ft-template -q -j 3 -t "$FT_ROOT/examples/crosswoz/hotel.jinja" d.jsonl > j3.jsonl
cmp j1.jsonl j3.jsonl && echo identical
wc -l < j1.jsonl
