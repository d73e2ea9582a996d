# Built-in templates render what the models' own chat templates render.
"$PYTHON" "$TESTS/ref/builtins.py" "$SHARED" "$TESTDATA/template/builtins.jsonl"
