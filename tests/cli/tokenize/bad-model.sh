printf 'not a model' > m.model
printf '{"text":"hi"}\n' | ft-tokenize -m m.model -L 64 -o out.bin; echo "exit $?"
printf '{"text":"hi"}\n' | ft-tokenize -m missing.model -L 64 -o out.bin; echo "exit $?"; ls
