/* mma.cuh: the one tensor-core instruction the kernels use, behind a
 * function, so that tests/cudaemu/emu.h can stand in for it (prep.py swaps
 * this header for the emulator's version).
 *
 * ft_mma_bf16: C += A B for one warp, mma.sync m16n8k16 (sm_80 and newer):
 * A 16x16 bf16 (row major), B 16x8 bf16 (column major), C 16x8 fp32. Lane
 * l = 4 g + t holds (PTX ISA, "Matrix fragments for mma.m16n8k16"):
 *   a[0] = A[g][2t, 2t+1]    a[1] = A[g+8][2t, 2t+1]
 *   a[2] = A[g][2t+8, +9]    a[3] = A[g+8][2t+8, +9]
 *   b[0] = B[2t, 2t+1][g]    b[1] = B[2t+8, 2t+9][g]
 *   c[0..1] = C[g][2t, 2t+1] c[2..3] = C[g+8][2t, 2t+1]
 * each 32-bit register a pair of bf16, the lower index in the low half. */
#ifndef FT_KERNELS_CUDA_MMA_CUH
#define FT_KERNELS_CUDA_MMA_CUH

#include <stdint.h>

static __device__ __forceinline__ void ft_mma_bf16(float (&c)[4], const uint32_t (&a)[4],
						   const uint32_t (&b)[2])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
	asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
	    "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
	    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
	    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
	asm volatile("trap;");   /* never: the build targets sm_80 and newer */
#endif
}

#endif
