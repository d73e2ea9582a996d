#!/usr/bin/env python3
"""prep.py: rewrite the CUDA kernels into C++ that tests/cudaemu/emu.h runs
on the host.

usage: prep.py OUTDIR [ROOT]

Reads ROOT/kernels/cuda (ROOT defaults to the repository holding this
script) and writes into OUTDIR:
  layers.cpp optim.cpp attention.cpp   the .cu files, rewritten
  decode.cpp                           the same, when decode.cu exists
  matmul_bias.cpp                      matmul.cu's bias_grad kernel and
                                       ft_cuda_matmul_backward (its cuBLASLt
                                       GEMMs stubbed out: they stop the program)
  cuda.cuh                             kernels/cuda/cuda.cuh with the grid cap
                                       of ft_cuda_blocks made a variable
  cuda_runtime.h cuda_bf16.h mma.cuh   one line each: #include "emu.h" (emu.h
                                       provides mma.cuh's ft_mma_bf16)
  emu_have.h                           EMU_HAVE_DECODE when decode.cpp exists
Each .cpp starts with a #line directive, so compiler messages, assert()
and CUDA_CHECK name the original file and line.

What is rewritten: kernel<<<grid, block[, smem[, stream]]>>>(args) into
emu_launch(emu_config(grid, block, ...), kernel, args); extern __shared__
arrays into the block's dynamic shared memory; __shared__ arrays and
scalars inside functions into per-block storage (emu_static_shared).
Everything else is compiled as it is. A construct that is neither
rewritten nor provided by emu.h (any __identifier, cudaXxx call, atomic,
inline assembly, header or form of __shared__ not listed below) is an
error: prep.py names the file, line and construct and exits 1, so that a
kernel change the emulator cannot follow breaks the test visibly instead
of leaving it testing less.
"""
import os
import re
import sys

# Double-underscore names emu.h provides (or that are plain C++).
SUPPORTED = {
    # qualifiers
    '__global__', '__device__', '__host__', '__forceinline__', '__launch_bounds__',
    '__restrict__', '__align__',
    # intrinsics
    '__syncthreads', '__shfl_xor_sync', '__ldg',
    '__nv_bfloat16', '__nv_bfloat162', '__float2bfloat16_rn', '__bfloat162float',
    '__floats2bfloat162_rn', '__bfloat1622float2', '__uint_as_float', '__float_as_uint',
    '__fadd_rn', '__fsub_rn', '__fmul_rn', '__fdiv_rn', '__fsqrt_rn', '__frcp_rn',
    # the preprocessor's and the language's
    '__FILE__', '__LINE__', '__func__', '__cplusplus',
}
# Runtime API names emu.h provides.
SUPPORTED_CUDA = {
    'cudaStream_t', 'cudaError_t', 'cudaSuccess', 'cudaErrorInvalidValue',
    'cudaErrorMemoryAllocation', 'cudaErrorInvalidConfiguration', 'cudaGetLastError',
    'cudaPeekAtLastError', 'cudaGetErrorString', 'cudaMalloc', 'cudaFree', 'cudaMemcpy',
    'cudaMemcpyAsync', 'cudaMemset', 'cudaMemsetAsync', 'cudaStreamSynchronize',
    'cudaDeviceSynchronize', 'cudaFuncSetAttribute', 'cudaFuncAttribute',
    'cudaFuncAttributeMaxDynamicSharedMemorySize', 'cudaMemcpyKind', 'cudaMemcpyHostToHost',
    'cudaMemcpyHostToDevice', 'cudaMemcpyDeviceToHost', 'cudaMemcpyDeviceToDevice',
    'cudaMemcpyDefault', 'cudaDataType_t',
}
# Headers a kernel may include: the two emu.h stands in for, the project's,
# and the C library's.
HEADERS = {
    'cuda_bf16.h', 'cuda_runtime.h', 'cuda.cuh', 'mma.cuh', 'ops.h', 'decode.h', 'ft.h',
    'assert.h', 'errno.h', 'float.h', 'limits.h', 'math.h', 'stddef.h', 'stdint.h',
    'stdio.h', 'stdlib.h', 'string.h',
}
# Other names that mean GPU-only features.
UNSUPPORTED = re.compile(r'\b(atomic[A-Z]\w*|asm|cooperative_groups|nvcuda|wmma|cub|thrust|'
                         r'tex[123]D\w*|surf[123]D\w*|clock64|rsqrtf?|CUDART_\w+)\b')

# the grid cap in cuda.cuh's ft_cuda_blocks
GRID_CAP = '65535u * 16u'

errors = []


def error(path, text, pos, what):
    line = text.count('\n', 0, pos) + 1
    errors.append('%s:%d: %s' % (path, line, what))


def code_view(text):
    """text with comments, string and character literals blanked out (same
    length, newlines kept), for searching code only"""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != '\n':
                out[k] = ' '
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            blank(i + 1, j)   # keep the quotes
            i = j + 1
        else:
            i += 1
    return ''.join(out)


def depth_at(code, pos):
    """brace depth at pos: 0 at file scope"""
    return code.count('{', 0, pos) - code.count('}', 0, pos)


def check_constructs(path, text, code):
    for m in re.finditer(r'^[ \t]*#[ \t]*include[ \t]*[<"]([^>"]+)[>"]', text, re.M):
        if m.group(1) not in HEADERS:
            error(path, text, m.start(), "cannot rewrite: #include '%s' (a header emu.h "
                  "does not stand in for)" % m.group(1))
    for m in re.finditer(r'\b__\w+', code):
        if m.group(0) not in SUPPORTED and m.group(0) != '__shared__':
            error(path, text, m.start(), "cannot rewrite: '%s' (not emulated by "
                  "tests/cudaemu/emu.h)" % m.group(0))
    for m in re.finditer(r'\bcuda[A-Z]\w*', code):
        if m.group(0) not in SUPPORTED_CUDA:
            error(path, text, m.start(), "cannot rewrite: '%s' (runtime call not emulated "
                  "by tests/cudaemu/emu.h)" % m.group(0))
    for m in UNSUPPORTED.finditer(code):
        error(path, text, m.start(), "cannot rewrite: '%s' (GPU-only feature not "
              "emulated)" % m.group(0))


def rewrite_shared(path, text, code, edits):
    """edits += (start, end, replacement) for every __shared__ declaration"""
    decl = re.compile(r'(extern\s+)?__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?'
                      r'((?:(?:const|volatile|unsigned|signed|long|short|struct)\s+)*'
                      r'[A-Za-z_][\w:]*(?:\s*<[^;<>{}]*>)?)\s+([^;{}]+);')
    covered = set()
    for m in decl.finditer(code):
        covered.add(m.start() + (len(m.group(1)) if m.group(1) else 0))
        extern, typ, decls = m.group(1), m.group(2), m.group(3)
        at_file_scope = depth_at(code, m.start()) == 0
        if extern:
            d = re.fullmatch(r'\s*([A-Za-z_]\w*)\s*\[\s*\]\s*', decls)
            if not d:
                error(path, text, m.start(), "cannot rewrite: extern __shared__ '%s' "
                      "(only 'extern __shared__ T name[];')" % decls.strip())
                continue
            name = d.group(1)
            if at_file_scope:
                rep = '#define %s ((%s *)emu_dynamic_shared())' % (name, typ)
            else:
                rep = '%s *const %s = (%s *)emu_dynamic_shared();' % (typ, name, typ)
        else:
            if at_file_scope:
                error(path, text, m.start(), "cannot rewrite: __shared__ at file scope")
                continue
            parts = []
            for one in decls.split(','):
                d = re.fullmatch(r'\s*([A-Za-z_]\w*)\s*((?:\[[^\[\]]+\]\s*)*)', one)
                if not d:
                    error(path, text, m.start(), "cannot rewrite: __shared__ declarator "
                          "'%s' (only names and arrays, no initialisers)" % one.strip())
                    break
                name, dims = d.group(1), re.sub(r'\s+', ' ', d.group(2).strip())
                parts.append('static const char %s_emu_key_ = 0; auto &%s = '
                             'emu_static_shared<%s%s>(&%s_emu_key_, __FILE__, __LINE__);'
                             % (name, name, typ, dims, name))
            else:
                rep = ' '.join(parts)
            if len(parts) != len(decls.split(',')):
                continue
        newlines = text.count('\n', m.start(), m.end())
        edits.append((m.start(), m.end(), rep + '\n' * newlines))
    for m in re.finditer(r'\b__shared__\b', code):
        if m.start() not in covered:
            error(path, text, m.start(), "cannot rewrite: this form of __shared__ "
                  "declaration (only 'extern __shared__ T name[];' and '__shared__ T "
                  "name[N]..., ...;' without initialisers)")


def rewrite_launches(path, text, code, edits):
    """edits += one for every kernel<<<config>>>( ... )"""
    kernel = re.compile(r'([A-Za-z_][\w:]*(?:\s*<[^<>;(){}]*>)?)(\s*)$')
    pos = 0
    while True:
        a = code.find('<<<', pos)
        if a < 0:
            break
        b = code.find('>>>', a + 3)
        k = kernel.search(code, max(0, a - 300), a)
        p = re.compile(r'\s*\(').match(code, b + 3) if b >= 0 else None
        if b < 0 or not k or not p:
            error(path, text, a, "cannot rewrite: this kernel launch (expected "
                  "'kernel<<<config>>>(args)', kernel a name with optional template "
                  "arguments)")
            pos = a + 3
            continue
        config = text[a + 3:b]
        name = re.sub(r'\s+', ' ', k.group(1))
        no_args = re.compile(r'\s*\)').match(code, p.end()) is not None
        span = text[k.start():p.end()]
        newlines = span.count('\n') - config.count('\n')
        rep = 'emu_launch(emu_config(%s), %s%s' % (config, name, '' if no_args else ', ')
        edits.append((k.start(), p.end(), rep + '\n' * newlines))
        pos = p.end()


def apply(text, edits):
    for start, end, rep in sorted(edits, reverse=True):
        text = text[:start] + rep + text[end:]
    return text


def convert(path, text, line=1):
    """the emulator's C++ for CUDA source text taken from line `line` of path"""
    code = code_view(text)
    check_constructs(path, text, code)
    edits = []
    rewrite_shared(path, text, code, edits)
    rewrite_launches(path, text, code, edits)
    return '#line %d "%s"\n' % (line, path) + apply(text, edits)


def brace_end(code, start):
    """index just past the block whose '{' is the first at or after start"""
    i = code.find('{', start)
    if i < 0:
        return -1
    d = 0
    for j in range(i, len(code)):
        if code[j] == '{':
            d += 1
        elif code[j] == '}':
            d -= 1
            if d == 0:
                return j + 1
    return -1


def matmul_bias(path, text):
    """bias_grad and ft_cuda_matmul_backward out of matmul.cu"""
    code = code_view(text)
    k = re.search(r'^[^\n]*\bvoid\s+bias_grad\s*\(', code, re.M)
    f = re.search(r'^void\s+ft_cuda_matmul_backward\s*\(', code, re.M)
    end = brace_end(code, f.start()) if f else -1
    if not k or not f or end < 0 or f.start() < k.start():
        error(path, text, 0, "cannot find the bias_grad kernel followed by "
              "ft_cuda_matmul_backward")
        return ''
    part = text[k.start():end]
    line = text.count('\n', 0, k.start()) + 1
    return ('#include <assert.h>\n#include <stdint.h>\n#include "cuda.cuh"\n'
            '/* prep.py: the cuBLASLt GEMMs are not emulated: a call stops the program */\n'
            'template <typename... A> static void gemm(A...)\n'
            '{\n\temu_die("cuBLASLt gemm is not emulated", __FILE__, __LINE__);\n}\n'
            + convert(path, part, line) + '\n')


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1].startswith('-'):
        sys.stderr.write('usage: prep.py OUTDIR [ROOT]\n')
        return 2
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(sys.argv[2] if len(sys.argv) == 3
                           else os.path.join(here, '..', '..'))
    src = os.path.join(root, 'kernels', 'cuda')
    os.makedirs(out, exist_ok=True)

    def read(name):
        """the file's path for messages (relative to ROOT) and its text"""
        path = os.path.join(src, name)
        with open(path) as f:
            return os.path.relpath(path, root), f.read()

    results = {}
    for name in ('layers', 'optim', 'attention', 'decode'):
        if name == 'decode' and not os.path.exists(os.path.join(src, 'decode.cu')):
            continue
        path, text = read(name + '.cu')
        results[name + '.cpp'] = convert(path, text)
    path, text = read('matmul.cu')
    results['matmul_bias.cpp'] = matmul_bias(path, text)
    path, text = read('cuda.cuh')
    if text.count(GRID_CAP) != 2:
        error(path, text, 0, "cannot rewrite: ft_cuda_blocks' grid cap '%s' (expected twice)"
              % GRID_CAP)
    results['cuda.cuh'] = '#line 1 "%s"\n' % path + text.replace(GRID_CAP, 'emu_max_blocks')
    if errors:
        for e in errors:
            sys.stderr.write('prep.py: %s\n' % e)
        return 1
    results['cuda_runtime.h'] = results['cuda_bf16.h'] = results['mma.cuh'] = '#include "emu.h"\n'
    results['emu_have.h'] = '#define EMU_HAVE_DECODE %d\n' % ('decode.cpp' in results)
    for name, text in results.items():
        with open(os.path.join(out, name), 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
