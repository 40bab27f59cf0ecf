# dubgraph: `make demo` sets everything up and dubs the example conversation; `make test` runs the tests.
PY := .venv/bin/python
# chromium: the review page's browser tests drive it (Playwright, this executable; no browser is downloaded)
SYSTEM_PACKAGES := ffmpeg espeak-ng sox libsndfile1 chromium
DEMO_OUT ?= out/demo

.PHONY: setup system-deps demo test bench gpu-check gpu-debs models vendor-web clean

setup: system-deps .venv/.synced

system-deps:
	@missing=$$(for p in ffmpeg espeak-ng sox chromium; do command -v $$p >/dev/null || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages: $(SYSTEM_PACKAGES)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && $$SUDO apt-get install -y -q $(SYSTEM_PACKAGES); \
	fi

.venv/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null || python3 -m pip install -q uv
	uv sync --frozen
	@touch $@

examples/conversation.wav: .venv/.synced
	@mkdir -p examples
	$(PY) -c "import importlib.util, pathlib, shutil; \
	  root = pathlib.Path(importlib.util.find_spec('pyannote.audio').origin).parent; \
	  shutil.copy(root / 'sample' / 'sample.wav', '$@')"

demo: setup examples/conversation.wav
	.venv/bin/dubgraph dub examples/conversation.wav --to pt-br --profile offline --out $(DEMO_OUT)

models: setup
	.venv/bin/dubgraph models --profile offline

# Two pytest workers (pytest-xdist), a test file each at a time, tests/serve as one (tests/conftest.py). Each
# worker has its own session Ray.
TEST_WORKERS ?= 2
test: setup
	.venv/bin/pytest -q -n $(TEST_WORKERS)

# The review page's vendored JavaScript, exactly the versions and checksums in graph/jobs/web/static/vendor/VERSIONS.
vendor-web:
	scripts/vendor_web.sh

bench: setup
	$(PY) -m bench.run

# On a CUDA machine, from the repository: the gpu tests, T3/S3Gen per batch size (fast vs exact decode) and the
# end-to-end job (bench/gpu.py). Without the project's venv there, carry wheels made by shared/tools/device-wheels
# in .whl/ and inputs made here by `python -m bench.gpu --prepare gpu-inputs` (no espeak-ng or ffmpeg needed there).
# Fitting stretches lines with sox: where the GPU machine lacks it, carry .deb/ (`make gpu-debs` here, Debian's
# packages), which gpu-check unpacks into /tmp/sysroot.
GPU_PY = $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
SYSROOT := /tmp/sysroot
gpu-check:
	@if [ -d .whl ] && ! $(GPU_PY) -c "import ray.serve, chatterbox" 2>/dev/null; then \
	  $(GPU_PY) -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl; fi
	@if [ -d .deb ] && ! command -v sox >/dev/null; then for f in .deb/*.deb; do dpkg -x $$f $(SYSROOT); done; fi
	@test -d gpu-inputs || $(GPU_PY) -m bench.gpu --prepare gpu-inputs
	PATH=$$PATH:$(SYSROOT)/usr/bin LD_LIBRARY_PATH=$(SYSROOT)/usr/lib/x86_64-linux-gnu PYTHONPATH=$(CURDIR):/tmp/site \
	  $(GPU_PY) -m bench.gpu --record $(GPU_CHECK_ARGS)

gpu-debs:
	mkdir -p .deb && cd .deb && apt-get download sox libsox3 libgsm1 libltdl7 libmagic1 libmagic-mgc

clean:
	rm -rf out dubbed examples/conversation.wav .pytest_cache
