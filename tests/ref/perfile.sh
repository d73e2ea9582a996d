# Data preparation per input file in parallel (docs/data-parallel.md) against
# one run over all files: the page's scripts run as they are (xargs -P, a
# Slurm array job simulated, GNU parallel when installed) on the hotel
# dialogs cut into 4 files; augment, split, template byte-identical, shards
# equal document for document (--pad: row for row), ft-split --exact the
# documented exception, the evaluation loss of ft-train the same.
work=$(mktemp -d "${TMPDIR:-/tmp}/ft-perfile.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$TESTS/ref/perfile_check.py" "$FT_ROOT" "$BIN" "$SHARED" "$work"
