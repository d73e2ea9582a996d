# The loopback chat-completions server ft-augment's tests run against
# (tests/augment/server.py): protocol, fault injection, rate limits, and that
# the API key never reaches its log or output.
"$PYTHON" "$TESTS/augment/server_check.py"
