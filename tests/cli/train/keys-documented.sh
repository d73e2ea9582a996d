# every recipe key ft-train knows is documented in docs/train.md and the man page
n=0
for k in $(ft-train train --help | sed -n '/^Keys/,$p' | awk 'NR > 1 { print $1 }'); do
	grep -q "^| \`$k\` |" "$FT_ROOT/docs/train.md" || echo "docs/train.md lacks $k"
	grep -qx ".B $k" "$FT_ROOT/docs/man/ft-train.1" || echo "ft-train.1 lacks $k"
	n=$((n + 1))
done
echo "$n keys checked"
