# --help on stdout, exit 0; --version.
ft-eval --help
echo "status $?"
ft-eval -h | head -n 1
ft-eval --version
