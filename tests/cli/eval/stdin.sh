# Standard input, plain or gzip; an empty input gives an empty report.
printf '{"prediction":"assistant: ab","reference":"assistant: ab"}\n' | gzip | ft-eval --json
echo "status $?"
ft-eval </dev/null
echo "status $?"
