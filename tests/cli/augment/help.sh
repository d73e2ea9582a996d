# --help on stdout, exit 0; -h the same; --version.
unset OPENAI_API_KEY OPENAI_BASE_URL
ft-augment --help
echo "status $?"
ft-augment -h | head -n 1
ft-augment --version >/dev/null
echo "version status $?"
