# ft-generate end to end: Hugging Face parity from the committed fixtures,
# tokenization as ft-tokenize, batch and thread independence, sampling
# seeds, stop strings, truncation, adapters (no torch needed).
mkdir -p generate && "$PYTHON" "$TESTS/ref/generate_check.py" "$BIN" "$SHARED" "$PWD/generate"
