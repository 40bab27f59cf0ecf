# dubgraph: `make demo` sets everything up and dubs the example conversation; `make test` runs the tests.
PY := .venv/bin/python
# chromium: the review page's browser tests drive it (Playwright, this executable; no browser is downloaded)
SYSTEM_PACKAGES := ffmpeg espeak-ng sox libsndfile1 chromium
DEMO_OUT ?= out/demo

.PHONY: setup system-deps demo test bench models vendor-web clean

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

test: setup
	.venv/bin/pytest -q -m "not gpu"

# The review page's vendored JavaScript, exactly the versions and checksums in graph/jobs/web/static/vendor/VERSIONS.
vendor-web:
	scripts/vendor_web.sh

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf out dubbed examples/conversation.wav .pytest_cache
