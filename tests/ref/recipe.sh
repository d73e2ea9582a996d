# The CrossWOZ recipe end to end, small (examples/crosswoz/run.sh with two
# steps per training run and six test prompts): each stage's output checked
# against the stage before it.
work=$(mktemp -d "${TMPDIR:-/tmp}/ft-recipe.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$PYTHON" "$TESTS/ref/recipe_check.py" "$FT_ROOT" "$BIN" "$SHARED" "$work"
