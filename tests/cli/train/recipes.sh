# every committed recipe resolves (with the paths it leaves open given)
for r in "$FT_ROOT"/recipes/*.toml; do
	echo "$(basename "$r"):"
	ft-train train -r "$r" --model m --train t.bin --output o --dry-run |
		grep -E '^(method|lr|micro_batch|grad_accum) ' || echo "FAILED"
done
