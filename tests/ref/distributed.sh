# ft-train data parallel over MPI: 2 ranks on this machine against 1 rank
# doing twice the micro-batches, resume, a failing and a killed rank.
# Needs mpirun (openmpi-bin, which scripts/ensure-deps installs) and an
# ft-train built with MPI; without either it says so and checks nothing.
if ! command -v mpirun >/dev/null; then
	echo "distributed: 0 passed, 0 failed (skipped: no mpirun; apt-get install openmpi-bin)"
	exit 0
fi
if grep -q "built without MPI" "$BIN/ft-train"; then
	echo "distributed: 0 passed, 0 failed (skipped: ft-train built without MPI; install libopenmpi-dev and rebuild)"
	exit 0
fi
# OpenMPI refuses root unless told, and counts cores, not threads, as slots
mpirun="mpirun --oversubscribe --bind-to none"
[ "$(id -u)" = 0 ] && mpirun="$mpirun --allow-run-as-root"
mkdir -p distributed &&
	"$PYTHON" "$TESTS/ref/distributed_check.py" "$BIN" "$SHARED" "$PWD/distributed" $mpirun
