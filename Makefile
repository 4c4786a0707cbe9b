# One entry point for every job. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed

.PHONY: setup hooks lock upgrade lock-check demo test test-under-load check-fast lint types unit suite bench clean package deploy infra-check

## The installer, bootstrapped with pip at the version and hashes uv.lock pins for it.
$(UV):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
		echo "make: uv.lock is for Python 3.11, and $(PYTHON) is not: run make PYTHON=python3.11 ..." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python scripts/lock.py bootstrap > $(VENV)/uv-requirement.txt
	$(BIN)/pip install --quiet --no-deps --only-binary=:all: --require-hashes -r $(VENV)/uv-requirement.txt

## Install exactly what uv.lock pins (runtime + dev extra, and the project, editable) into .venv; uninstall
## anything else. Runs again only when uv.lock or pyproject.toml changes.
$(STAMP): $(UV) uv.lock pyproject.toml
	$(UV) sync --locked --extra dev || { echo "make: uv.lock is out of step with pyproject.toml: run \`make lock\`" >&2; exit 1; }
	touch $(STAMP)

setup: $(STAMP)

## After editing dependencies in pyproject.toml: resolve what changed (every other pin stays), regenerate
## requirements.txt. Commit pyproject.toml, uv.lock and requirements.txt together.
lock: $(UV)
	$(UV) lock
	$(BIN)/python scripts/lock.py requirements

## Move every dependency to the newest version pyproject.toml allows, then the same as `make lock`.
upgrade: $(UV)
	$(UV) lock --upgrade
	$(BIN)/python scripts/lock.py requirements

## uv.lock is in step with pyproject.toml (offline unless it is not), and requirements.txt is the one uv.lock gives.
lock-check: $(STAMP)
	$(UV) lock --check || { echo "make: uv.lock is out of step with pyproject.toml: run \`make lock\`" >&2; exit 1; }
	$(BIN)/python scripts/lock.py requirements --check

## Run the whole flow offline: moto + Cloudcraft and Proton emulators on loopback.
demo: $(STAMP)
	$(BIN)/gatehouse sandbox demo

## What CI runs: lint, types, the lock check, and every test, the infra ones (`chalice package`) included.
test: lint types lock-check suite infra-check

## The quick loop: lint, types, the lock check and the unit tests (tests/unit), in seconds.
check-fast: lint types lock-check unit

## ruff check (its complexity ceiling included) and ruff format --check, over the whole tree.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## mypy --strict over the files pyproject.toml lists (app.py, chalicelib, gatehouse, benchmarks, scripts).
types: $(STAMP)
	$(BIN)/mypy

## Unit tests only: tests/unit, pure logic.
unit: $(STAMP)
	$(BIN)/pytest -n 2 -q tests/unit

## Every test but the infra ones: unit, functional, e2e and the offline deployment checks (tests/deploy).
suite: $(STAMP)
	$(BIN)/pytest -n 2 -q -m "not infra"

## The deployment checks that run `chalice package` for real (PyPI, no AWS credentials): cfn-lint, roles, rules, zip.
infra-check: $(STAMP)
	$(BIN)/pytest -q -m infra tests/deploy

## What CI runs, while two CPU hogs keep both cores busy: no test may depend on the machine's speed.
## Exits with the run's status; the hogs are killed however it ends.
test-under-load:
	@bash -c '$(PYTHON) -c "while True: pass" & hog1=$$!; $(PYTHON) -c "while True: pass" & hog2=$$!; \
		trap "kill $$hog1 $$hog2 2>/dev/null" EXIT; trap "exit 130" INT; trap "exit 143" TERM; \
		bash .ci/run'

bench: $(STAMP)
	$(BIN)/python benchmarks/onboarding.py
	$(BIN)/python benchmarks/approvals.py
	$(BIN)/python benchmarks/fleet.py --accounts 1000
	$(BIN)/python benchmarks/planning.py
	$(BIN)/python benchmarks/fanout.py
	$(BIN)/python benchmarks/glob.py
	$(BIN)/python benchmarks/pace.py
	$(BIN)/python benchmarks/new_accounts.py --accounts 300
	$(BIN)/python benchmarks/coldstart.py
	$(BIN)/python benchmarks/cli.py

## Deployment (README.md, Deploy). STAGE is a stage of .chalice/config.json.
STAGE ?= dev

## Package a stage into out/$(STAGE): Chalice's template merged with infra/resources.yaml, the code zip, the forwarder.
package: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" PYTHON="$(CURDIR)/$(BIN)/python" scripts/package.sh $(STAGE)

## Package and deploy a stage: make deploy STAGE=prod ARTIFACT_BUCKET=<S3 bucket in the deployment region>
deploy: package
	PYTHON="$(CURDIR)/$(BIN)/python" scripts/deploy.sh $(STAGE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## Install the git hooks of .pre-commit-config.yaml (the checks above, on commit and on push).
hooks: $(STAMP)
	$(BIN)/pre-commit install
