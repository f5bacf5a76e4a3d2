# trailwatch: `make run` shows an alert from the sample event, `make test` runs
# everything CI runs. Both set themselves up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# One target dir for every profile and tool (never build the same profile twice).
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/debug/trailwatch

.PHONY: help run test docs test-arm64 build venv venv-test venv-template venv-checkov venv-lambda lint fmt clippy template unit bench emulate clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

run: ## Run the Lambda handler on events/s3-put.json with S3 served from events/objects (no AWS)
	cargo build --quiet
	$(BIN) invoke events/s3-put.json --objects events/objects

venv: ## Every Python tool (moto, cfn-lint, sam, checkov, cargo-lambda, zig) in .venv
	@scripts/venv.sh

# Each target installs only the tools it uses (see scripts/venv.sh).
venv-test:
	@scripts/venv.sh test
venv-template:
	@scripts/venv.sh template
venv-checkov:
	@scripts/venv.sh checkov
venv-lambda:
	@scripts/venv.sh lambda

test: fmt clippy template unit ## Everything CI runs

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets -- -D warnings

template: venv-template venv-checkov ## Lint template.yaml and deploy/*.yaml (cfn-lint, sam validate --lint, checkov)
	scripts/lint-template.sh

# `cargo test` builds three test binaries (library, binary, tests/it); clippy
# --all-targets already compiles the examples and the benchmark. tests/it runs
# the examples of README.md and docs/ too (see `make docs`).
unit: venv-test ## Unit, integration, property and emulator tests
	cargo test
	$(BIN) test

# Also part of `unit` (`cargo test` runs tests/it/docs.rs); this runs only them.
docs: ## Run the README's and docs/' console examples, check the commands and links they show (docs/examples.md)
	cargo test --test it docs::

test-arm64: ## The decoder's tests, NEON kernel included, built for arm64 and run under qemu-user
	scripts/test-arm64.sh

build: venv-lambda ## Lambda artifact for arm64 (cargo-lambda), in target/lambda/trailwatch
	cargo lambda build --release --arm64 --bin trailwatch

emulate: venv-lambda ## Real Lambda binary (cargo lambda watch) against moto: S3 log in, alert out of SNS/SQS, once
	scripts/emulate.sh

bench: ## Throughput vs decompression and Python, peak RSS, start-up, binary size (corpus cached in .bench/)
	benches/run.sh

clean:
	cargo clean
	rm -rf .venv .bench .emulate .aws-sam
