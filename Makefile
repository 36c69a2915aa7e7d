# One target per habit. Every target sets itself up (uv + the locked environment) first.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: setup test lint bench goldens demo dist dist-test clean

setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
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
	LAUNCH_UPDATE_GOLDENS=1 $(UV) run pytest -q tests/test_katib.py tests/test_kaniko.py

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
