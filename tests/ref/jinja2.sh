#!/bin/bash
# Reference comparison of the Jinja engine against Python's jinja2, set up as
# Hugging Face transformers sets it up (tests/ref/jinja2_check.py: chat
# templates x conversations through ft-template, engine feature cases through
# $BUILD/tests/jinja-render, deep nesting and mangled templates, provenance).
# Prints "N passed, N failed" last.
set -u
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import jinja2' 2>/dev/null; then
	echo "FAIL jinja2: $PYTHON cannot import jinja2 (Debian: python3-jinja2)"
	echo "0 passed, 1 failed"
	exit 1
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
exec "$PYTHON" "$TESTS/ref/jinja2_check.py"
