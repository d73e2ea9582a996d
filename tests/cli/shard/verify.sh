# verify: ok for a good shard; a flipped mask byte, a truncated file and a
# bad header are each reported, exit 1, and the other files still checked.
. "$TESTS/cli/shard/setup.inc"
mkshard "$TESTS/cli/shard/sample.json" good.bin
ft-shard verify good.bin
echo "status $?"
cp good.bin flip.bin
off=$(ft-shard info --json good.bin | sed -E 's/.*"name":"mask","offset":([0-9]+).*/\1/')
printf '\001' | dd of=flip.bin bs=1 seek=$((off + 3)) conv=notrunc status=none
ft-shard info flip.bin >/dev/null
echo "info status $?"
head -c 600 good.bin >cut.bin
cp good.bin hdr.bin
printf 'X' | dd of=hdr.bin bs=1 seek=30 conv=notrunc status=none
printf 'not a shard\n' >text.txt
ft-shard verify flip.bin good.bin cut.bin hdr.bin text.txt
echo "status $?"
printf x | ft-shard verify /dev/stdin; echo "status $?"; mkdir d; ft-shard info d; echo "status $?"
