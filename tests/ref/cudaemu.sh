# The CUDA kernels without a GPU: tests/cudaemu/prep.py rewrites
# kernels/cuda's sources for the CPU emulator tests/cudaemu/emu.h, and
# tests/cudaemu/test_emu.cpp runs them against the CPU kernels (compiled as
# the Makefile does: OpenMP, OpenBLAS). No nvcc needed. A rewrite or
# compile failure is one failed check. Honours CC, CXX and SAN (make
# sanitize), which also runs the smaller shapes.
CC=${CC:-cc}
CXX=${CXX:-c++}
SAN=${SAN:-}
work=$PWD/cudaemu
mkdir -p "$work"
multiarch=$($CC -print-multiarch 2>/dev/null)
blas=/usr/lib/$multiarch/openblas-openmp
cflags="-O2 -pthread $SAN"

build() {
	"$PYTHON" "$FT_ROOT/tests/cudaemu/prep.py" "$work" "$FT_ROOT" || return 1
	cd "$FT_ROOT" || return 1
	local pids="" f st=0
	for f in kernels/cpu/*.c; do
		$CC -std=c11 -D_GNU_SOURCE -fopenmp $cflags -Ilib -Ikernels -Itrainer \
			-I/usr/include/$multiarch/openblas-openmp -c "$f" \
			-o "$work/cpu_$(basename "$f" .c).o" &
		pids="$pids $!"
	done
	# -ffp-contract=off: the host compiler must not fuse what the kernels
	# leave unfused (the emulator's rounding must not depend on the flags)
	for f in "$work"/*.cpp tests/cudaemu/test_emu.cpp; do
		$CXX -std=c++17 -ffp-contract=off $cflags -Wall -Wno-unknown-pragmas \
			-Wno-unused-parameter -I"$work" -Itests/cudaemu \
			-Ikernels -Ilib -Itests/unit -c "$f" -o "$work/$(basename "$f" .cpp).o" &
		pids="$pids $!"
	done
	for p in $pids; do
		wait "$p" || st=1
	done
	[ $st = 0 ] || return 1
	$CXX $cflags -fopenmp -o "$work/test_emu" "$work"/*.o -L"$blas" -Wl,-rpath,"$blas" \
		-lopenblas -lm
}

if ! out=$(build 2>&1); then
	printf '%s\n' "$out" | head -n 60
	echo "FAIL tests/ref/cudaemu.sh: the emulated kernels did not build"
	echo "0 passed, 1 failed"
	exit 1
fi
# idle OpenMP threads sleep instead of spinning against the emulator's
OMP_WAIT_POLICY=passive "$work/test_emu" ${SAN:+small}
