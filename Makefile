# ft — fine-tuning toolchain. Plain make: `make`, `make test`, `make demo`,
# `make sanitize`, `make install PREFIX=...`. See README.md.

PREFIX  ?= /usr/local
BUILD   ?= build
BIN     ?= bin
CC      ?= cc
CXX     ?= c++
OPT     ?= -O2 -g
SAN     ?=
CFLAGS  ?= $(OPT)
FT_CFLAGS = -std=c11 -Wall -Wextra -Werror -Wvla -Wno-unused-parameter \
	-Wstrict-prototypes -Wmissing-prototypes -pthread $(SAN)
FT_CPPFLAGS = -D_GNU_SOURCE -Ilib -MMD -MP
FT_CXXFLAGS = -std=c++17 -Wall -Wextra -Werror -Wno-unused-parameter -pthread $(SAN)
# libsentencepiece is C++: its one wrapper (lib/spm.cc) pulls in libstdc++
LDLIBS  = -lsentencepiece -lstdc++ -lcjson -lutf8proc -lz -lm -pthread

LIB_SRC   := $(wildcard lib/*.c) $(wildcard lib/*.cc)
LIB_OBJ   := $(patsubst %.cc,$(BUILD)/%.o,$(LIB_SRC:%.c=$(BUILD)/%.o))
LIBFT     := $(BUILD)/libft.a

TOOLS     := template split tokenize shard augment eval
TOOL_BINS := $(TOOLS:%=$(BIN)/ft-%)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

TEST_TOOL_SRC := $(wildcard tests/tools/*.c)
TEST_TOOLS    := $(TEST_TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/%)

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all deps test test-cuda sanitize demo install clean bench bench-gpu check-tests
.DEFAULT_GOAL := all

all: $(DEPS_STAMP) $(TOOL_BINS)

# Install missing Debian packages (apt-get as root; otherwise print the line).
deps $(DEPS_STAMP): scripts/ensure-deps
	@scripts/ensure-deps
	@mkdir -p $(BUILD) && touch $(DEPS_STAMP)

# objects depend on the Makefile too: a changed flag or library rebuilds
# and relinks everything instead of leaving stale objects behind
$(BUILD)/%.o: %.c Makefile | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(FT_CPPFLAGS) $(FT_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cc Makefile | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CXX) $(FT_CPPFLAGS) $(FT_CXXFLAGS) $(CFLAGS) -c $< -o $@

$(LIBFT): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

define tool_rule
$(BIN)/ft-$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/$(1)/*.c)) $(LIBFT)
	@mkdir -p $(BIN)
	$(CC) $(FT_CFLAGS) $(CFLAGS) $$(LDFLAGS) -o $$@ $$^ $(LDLIBS) $(TOOL_LIBS_$(1))
endef
# ft-augment talks HTTP through libcurl; no other tool links it
TOOL_LIBS_augment := -lcurl
$(foreach t,$(TOOLS),$(eval $(call tool_rule,$(t))))

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBFT)
	@mkdir -p $(@D)
	$(CC) $(FT_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# test drivers used by tests/ref (not tests themselves: tests/run skips them)
$(TEST_TOOLS): $(BUILD)/tests/%: $(BUILD)/tests/tools/%.o $(LIBFT)
	@mkdir -p $(@D)
	$(CC) $(FT_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ft-train: the trainer (trainer/), its CPU kernels (kernels/cpu/) and their
# tests (tests/train/) are the only objects built with OpenMP and linked with
# OpenBLAS.
TRAIN_SRC   := $(wildcard trainer/*.c) $(wildcard kernels/cpu/*.c)

# The CUDA backend (kernels/cuda/*.cu, bf16, cuBLASLt) is built when nvcc is
# found (PATH or /usr/local/cuda), for sm_80 and sm_90 plus sm_90 PTX for
# newer GPUs; `make CUDA=0` leaves it out and kernels/nocuda.c says so at
# run time. It compiles without a GPU; its tests skip without one.
NVCC        ?= $(firstword $(shell command -v nvcc 2>/dev/null) $(wildcard /usr/local/cuda/bin/nvcc))
CUDA        ?= $(if $(NVCC),1,0)
CUDA_HOME   ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_ARCH   ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90
NVCC_FLAGS  = -std=c++17 -O3 $(CUDA_ARCH) -Werror all-warnings -Xcompiler -Wall,-Wextra \
	-Xcompiler -Wno-unused-parameter
ifeq ($(CUDA),1)
CUDA_OBJ    := $(patsubst %.cu,$(BUILD)/%.o,$(wildcard kernels/cuda/*.cu))
CUDA_LIBS   := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -ldl -lstdc++
else
TRAIN_SRC   += kernels/nocuda.c
CUDA_OBJ    :=
CUDA_LIBS   :=
endif
$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.cu kernels/cuda/cuda.cuh kernels/cuda/mma.cuh kernels/comm.h \
		kernels/ops.h lib/ft.h Makefile | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(NVCC) $(NVCC_FLAGS) -D_GNU_SOURCE -Ilib -Ikernels -Ikernels/cuda -c $< -o $@

TRAIN_OBJ   := $(TRAIN_SRC:%.c=$(BUILD)/%.o)
TRAIN_TOOL  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/train/*.c))
TRAIN_BIN   := $(BIN)/ft-train
TRAIN_TSRC  := $(wildcard tests/train/test_*.c)
TRAIN_TESTS := $(TRAIN_TSRC:tests/train/%.c=$(BUILD)/tests/%)
# OpenBLAS's OpenMP build, not the pthread one Debian makes the default: the
# trainer's own loops are OpenMP, and two thread pools on the same cores spin
# against each other (measured: 2-3x slower steps). Linked by path, with an
# rpath, so the system's libopenblas.so.0 alternative does not matter.
MULTIARCH   := $(shell $(CC) -print-multiarch 2>/dev/null)
OPENBLAS    := /usr/lib/$(MULTIARCH)/openblas-openmp
TRAIN_LIBS  := -L$(OPENBLAS) -Wl,-rpath,$(OPENBLAS) -lopenblas -fopenmp

$(TRAIN_OBJ) $(TRAIN_TOOL) $(TRAIN_TSRC:%.c=$(BUILD)/%.o): \
	FT_CPPFLAGS += -Ikernels -Itrainer -I/usr/include/$(MULTIARCH)/openblas-openmp
$(TRAIN_TSRC:%.c=$(BUILD)/%.o): FT_CPPFLAGS += -Itests/unit
$(TRAIN_OBJ) $(TRAIN_TOOL) $(TRAIN_TSRC:%.c=$(BUILD)/%.o): \
	FT_CFLAGS += -fopenmp

# Data parallel over MPI (tools/train/dist.c): ft-train alone is built with
# -DFT_MPI and linked with libmpi when pkg-config finds an MPI (Debian's
# libopenmpi-dev; `make MPI=0` builds without). Its headers are -isystem:
# they do not pass -Werror. Deferred (=): decided when ft-train's files are
# built, after ensure-deps has installed what was missing.
MPI         ?= $(shell pkg-config --exists mpi 2>/dev/null && echo 1 || echo 0)
MPI_CFLAGS   = $(if $(filter 1,$(MPI)),-DFT_MPI $(patsubst -I%,-isystem %,$(shell pkg-config --cflags mpi)))
MPI_LIBS     = $(if $(filter 1,$(MPI)),$(shell pkg-config --libs mpi))
$(TRAIN_TOOL): FT_CPPFLAGS += $(MPI_CFLAGS)

$(TRAIN_BIN): $(TRAIN_TOOL) $(TRAIN_OBJ) $(CUDA_OBJ) $(LIBFT)
	@mkdir -p $(BIN)
	$(CC) $(FT_CFLAGS) -fopenmp $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TRAIN_LIBS) $(MPI_LIBS) $(CUDA_LIBS) \
		$(LDLIBS)

$(TRAIN_TESTS): $(BUILD)/tests/%: $(BUILD)/tests/train/%.o $(TRAIN_OBJ) $(CUDA_OBJ) $(LIBFT)
	@mkdir -p $(@D)
	$(CC) $(FT_CFLAGS) -fopenmp $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TRAIN_LIBS) $(CUDA_LIBS) $(LDLIBS)

all: $(TRAIN_BIN)
check-tests: $(TRAIN_TESTS)

# ft-generate: decoding over the trainer's model and kernels, built as ft-train
GEN_TOOL    := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/generate/*.c))
GEN_BIN     := $(BIN)/ft-generate
$(GEN_TOOL): FT_CPPFLAGS += -Ikernels -Itrainer -I/usr/include/$(MULTIARCH)/openblas-openmp
$(GEN_TOOL): FT_CFLAGS += -fopenmp
$(GEN_BIN): $(GEN_TOOL) $(TRAIN_OBJ) $(CUDA_OBJ) $(LIBFT)
	@mkdir -p $(BIN)
	$(CC) $(FT_CFLAGS) -fopenmp $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TRAIN_LIBS) $(CUDA_LIBS) $(LDLIBS)
all: $(GEN_BIN)

-include $(TRAIN_OBJ:.o=.d) $(wildcard $(BUILD)/tools/train/*.d) $(wildcard $(BUILD)/tests/train/*.d)

check-tests: all $(UNIT_BINS) $(TEST_TOOLS)

test: check-tests
	@FT_DEPS_EXTRA="python3 python3-jinja2 python3-sentencepiece python3-numpy python3-nltk sentencepiece" scripts/ensure-deps
	@BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/run

# The CUDA backend against the CPU, op by op and the whole decoder, on GPU 0;
# fails where there is no CUDA device (make test runs it too, and there it
# only says it was skipped).
test-cuda: all $(BUILD)/tests/test_cuda
	@cd tests && FT_REQUIRE_CUDA=1 $(abspath $(BUILD))/tests/test_cuda
	@FT_REQUIRE_CUDA=1 BIN=$(abspath $(BIN)) BUILD=$(abspath $(BUILD)) tests/run ref/cuda

# Everything again under AddressSanitizer and UBSan, in its own build tree
# (the CPU code: the CUDA kernels cannot run under the sanitizers).
sanitize:
	$(MAKE) BUILD=build-san BIN=build-san/bin OPT="-O1 -g -fno-omit-frame-pointer" CUDA=0 \
		SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

# The CrossWOZ hotel bot end to end on the CPU (examples/crosswoz/run.sh);
# its extract and report steps are Python 3 without packages.
demo: all
	@FT_DEPS_EXTRA="python3" scripts/ensure-deps
	@examples/crosswoz/run.sh

bench: all
	@bench/template/run
	@bench/tokenize/run
	@bench/augment/run
	@bench/train/run   # needs PYTHON with torch, transformers, peft (see the script)

# ft-train on a GPU against transformers + peft on the same GPU (bench/gpu/run)
bench-gpu: all
	@bench/gpu/run

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/ft/templates \
		$(DESTDIR)$(PREFIX)/share/ft/recipes $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(TOOL_BINS) $(TRAIN_BIN) $(GEN_BIN) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 templates/*.jinja $(DESTDIR)$(PREFIX)/share/ft/templates/
	install -m 644 recipes/*.toml $(DESTDIR)$(PREFIX)/share/ft/recipes/
	install -m 644 docs/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/

clean:
	rm -rf build build-san bin

-include $(LIB_OBJ:.o=.d) $(wildcard $(BUILD)/tools/*/*.d) $(wildcard $(BUILD)/tests/unit/*.d) \
	$(wildcard $(BUILD)/tests/tools/*.d)
.SECONDARY:
