# One target per habit. Every target sets itself up (uv + the locked environment) first.
# uv: the one on PATH, else `python3 -m uv`, else a copy local to this clone in build/tools/
# (installed by `setup` with `pip install --target`: nothing goes into the system or user Python,
# no root needed; `make clean` removes it).
LOCAL_UV := $(CURDIR)/build/tools/bin/uv
UV := $(shell command -v uv 2>/dev/null || (python3 -m uv --version >/dev/null 2>&1 && echo "python3 -m uv") || echo "$(LOCAL_UV)")
PYTEST_ARGS ?=

.PHONY: setup test lint bench goldens demo dist dist-test clean

## setup: uv (see above) and the locked environment in .venv/ with every extra
setup:
	@if ! $(UV) --version >/dev/null 2>&1; then \
	  echo "setup: uv is not installed; installing it into build/tools/ of this clone only" \
	    "(python3 -m pip install --target build/tools uv; rm -rf build/tools removes it)"; \
	  python3 -m pip install --quiet --disable-pip-version-check --target build/tools uv; \
	fi
	@$(UV) sync --frozen --all-extras --quiet

## test: the whole test suite (what CI runs)
test: setup
	$(UV) run pytest $(PYTEST_ARGS)

## lint: format check, lint, strict types, architecture contracts
lint: setup
	$(UV) run ruff format --check .
	$(UV) run ruff check .
	$(UV) run mypy
	$(UV) run lint-imports

## bench: benchmarks that print ratios measured side by side in one run
bench: setup
	@for script in bench/*.py; do echo "== $$script"; $(UV) run python $$script || exit 1; done

## goldens: regenerate tests/golden/ on purpose (never in CI)
goldens: setup
	LAUNCH_UPDATE_GOLDENS=1 $(UV) run pytest -q tests/test_katib.py tests/test_kaniko.py tests/test_trainjob.py
	LAUNCH_UPDATE_GOLDENS=1 $(UV) run pytest -q tests/test_registry_gate.py -k configmap

## demo: the quickstart sweep on this machine (local backend)
demo: setup
	cd examples/quickstart && $(UV) run launch --backend local search.yaml -- python train.py

## dist: dist/launch, one executable file for this platform (see docs/dist.md)
dist: setup
	$(UV) run python packaging/build.py

## dist-test: build dist/launch and test it as a user would (empty dir, `env -i`)
dist-test: dist
	$(UV) run pytest -m dist tests/test_dist.py

clean:
	rm -rf .venv dist build .pytest_cache .mypy_cache .ruff_cache
