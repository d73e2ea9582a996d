ft-train init --preset tiny
echo "status $?"
ft-train init --preset huge -o m
echo "status $?"
ft-train init --preset tiny --config x.json -o m
echo "status $?"
ft-train init --preset tiny -o m --dtype f8
echo "status $?"
ft-train frobnicate
