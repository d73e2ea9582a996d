# ft-tokenize against Python sentencepiece: ids, masks, packing, truncation,
# special tokens only from template text, -j invariance.
"$PYTHON" "$TESTS/ref/tokenize_check.py"
