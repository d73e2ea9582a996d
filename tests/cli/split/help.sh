# --help on stdout, exit 0; --version.
ft-split --help
echo "status $?"
ft-split -h | head -n 1
ft-split --version
