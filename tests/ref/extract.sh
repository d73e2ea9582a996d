# examples/crosswoz/extract on the real CrossWOZ data: shape, types, records
# from hotel_db satisfying their searches, determinism, rendering with the
# recipe template, hand-checked dialogs, errors.
"$PYTHON" "$TESTS/ref/extract_check.py"
