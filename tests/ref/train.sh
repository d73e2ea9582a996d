# ft-train end to end on hotel dialogs with a small random model: outputs,
# exact resume (checkpoint, kill -9, SIGINT), the objective under
# accumulation and packing, freezing, merging, NaN stop.
mkdir -p train && "$PYTHON" "$TESTS/ref/train_check.py" "$BIN" "$SHARED" "$PWD/train"
