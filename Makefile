# One entry point for every job. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-under-load lint types unit bench clean package deploy infra-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

## Run the whole flow offline: moto + Cloudcraft and Proton emulators on loopback.
demo: $(STAMP)
	$(BIN)/gatehouse sandbox demo

## Every check CI runs: lint, types, tests, and the deployment checks that package the app.
test: $(STAMP) lint types unit infra-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

## The fast tests: everything but `chalice package` (marker infra).
unit: $(STAMP)
	$(BIN)/pytest -n 2 -q -m "not infra"

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

## Deployment (README.md, Deploy). STAGE is a stage of .chalice/config.json.
STAGE ?= dev

## Package a stage into out/$(STAGE): Chalice's template merged with infra/resources.yaml, the code zip, the forwarder.
package: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/package.sh $(STAGE)

## Package and deploy a stage: make deploy STAGE=prod ARTIFACT_BUCKET=<S3 bucket in the deployment region>
deploy: package
	scripts/deploy.sh $(STAGE)

## The deployment checks that run `chalice package` for real (PyPI, no AWS credentials): cfn-lint, roles, rules, zip.
infra-check: $(STAMP)
	$(BIN)/pytest -q -m infra tests/deploy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
