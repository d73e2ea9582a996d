# ft-augment end to end against the loopback mock server (tests/augment/
# server.py) and a stub: replies, order under concurrency, --json, faults and
# retries, rejects, the API key never leaking, cache and kill -9 resume,
# selection, the lexicon backend, rate limits.
"$PYTHON" "$TESTS/augment/augment_check.py"
