# ft-eval against NLTK's sentence BLEU (method 3), an independent Python
# reading of the slot definition, hand-computed cases and the hotel data.
"$PYTHON" "$TESTS/ref/eval_check.py"
