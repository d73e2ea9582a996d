# ft-train with device = cuda against the same runs on the CPU: loss curves,
# evaluation, exports, and exact resume on the GPU. Skipped (and said so)
# without a CUDA device; FT_REQUIRE_CUDA=1 (make test-cuda) makes that a
# failure.
mkdir -p cuda && "$PYTHON" "$TESTS/ref/cuda_check.py" "$BIN" "$SHARED" "$PWD/cuda"
