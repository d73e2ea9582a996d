# Shards read with the numpy recipe of docs/shard-format.md agree with
# ft-shard dump/info, and dump decodes as Python's sentencepiece does.
"$PYTHON" "$TESTS/ref/shard_ref.py" "$SHARED" "$BUILD/tests/shard-write" "$FT_ROOT/docs/shard-format.md"
