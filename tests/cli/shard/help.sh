# --help on stdout, exit 0; --version; usage errors exit 2.
ft-shard --help
echo "status $?"
ft-shard verify -h | head -n 1
ft-shard --version
ft-shard
echo "status $?"
ft-shard frobnicate x.bin
echo "status $?"
ft-shard info
echo "status $?"
ft-shard info -o x.json x.bin
echo "status $?"
ft-shard verify --json x.bin
echo "status $?"
ft-shard dump x.bin
echo "status $?"
ft-shard dump -m m.model --format xml x.bin
echo "status $?"
ft-shard dump -m m.model --rows 5:2 x.bin
echo "status $?"
ft-shard dump -m m.model --rows=a x.bin
echo "status $?"
ft-shard merge x.bin
echo "status $?"
ft-shard info --bogus x.bin
echo "status $?"
ft-shard dump -m
echo "status $?"
