# The recipe template reproduces the reference prompt format on all hotel dialogs.
set -e
data=$SHARED/data/hotel/dialogs.jsonl.gz
ft-template -q -t "$FT_ROOT/examples/crosswoz/hotel.jinja" "$data" > crosswoz.samples.jsonl
"$PYTHON" "$TESTS/ref/crosswoz.py" "$data" crosswoz.samples.jsonl
