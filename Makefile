# trailwatch: `make run` shows an alert from the sample event, `make test` runs
# everything CI runs. Both set themselves up on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# One target dir for every profile and tool (never build the same profile twice).
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/debug/trailwatch
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing SAM_CLI_TELEMETRY=0

.PHONY: help run test test-arm64 build venv venv-test venv-template venv-lambda lint fmt clippy template unit bench emulate clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

run: ## Run the Lambda handler on events/s3-put.json with S3 served from events/objects (no AWS)
	cargo build --quiet
	$(BIN) invoke events/s3-put.json --objects events/objects

venv: ## Every Python tool (moto, cfn-lint, sam, cargo-lambda, zig) in .venv
	@scripts/venv.sh

# Each target installs only the tools it uses (see scripts/venv.sh).
venv-test:
	@scripts/venv.sh test
venv-template:
	@scripts/venv.sh template
venv-lambda:
	@scripts/venv.sh lambda

test: fmt clippy template unit ## Everything CI runs

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --all-targets -- -D warnings

template: venv-template ## Lint the templates (cfn-lint, sam validate --lint)
	cfn-lint template.yaml deploy/member-role.yaml
	$(SAM_ENV) sam validate --lint --region us-east-1 -t template.yaml
	$(SAM_ENV) sam validate --lint --region us-east-1 -t deploy/member-role.yaml

# `cargo test` builds three test binaries (library, binary, tests/it); clippy
# --all-targets already compiles the examples and the benchmark.
unit: venv-test ## Unit, integration, property and emulator tests
	cargo test
	$(BIN) test

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
