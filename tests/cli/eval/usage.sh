# Usage errors: a reason and a hint on stderr, exit 2, nothing written.
ft-eval -x; echo "status $?"
ft-eval --bogus; echo "status $?"
ft-eval --by; echo "status $?"
ft-eval --by ''; echo "status $?"
ft-eval --by a --by a; echo "status $?"
ft-eval --pred ''; echo "status $?"
ft-eval --ref ''; echo "status $?"
ft-eval --per-turn -; echo "status $?"
ft-eval --per-turn x -o x; echo "status $?"
ft-eval --max-line 0; echo "status $?"
ft-eval - -; echo "status $?"
ls -A | grep -v '^\.std' || echo '(no files)'
