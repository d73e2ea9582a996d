# --into paths that do not fit a record: intermediate objects and arrays must
# exist, --append needs an array; FILE:LINE, exit 1 (checked before anything
# is sent: the base URL is a closed port).
unset OPENAI_API_KEY OPENAI_BASE_URL
printf '{"id":"a","text":"x","list":[1],"d":[{"c":"q"}]}\n{"id":"b","text":"y","list":"notarray","d":[]}\n' >in.jsonl
echo '{{ text }}' >p.jinja
t() { ft-augment -q -p p.jinja -m gpt --base-url http://127.0.0.1:9/v1 --retries 0 --no-cache "$@" in.jsonl; echo "status $?"; }
t --into list --append
t --into meta.x
t --into list.5
t --into d.0.c.z
t --into text.x
t --into d.0.c --skip-bad --dry-run
