ft-train init --preset tiny --vocab-size 64 -o m 2>/dev/null || exit
ft-train init --preset tiny --vocab-size 64 -o m
echo "status $?"
ft-train init --preset tiny --vocab-size 64 -o m --force --seed 1 2>/dev/null && echo replaced
