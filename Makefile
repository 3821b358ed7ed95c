# One command surface for people and CI. `make` lists the targets.
.DEFAULT_GOAL := help
SHELL := bash
CARGO ?= cargo
STATE ?= .state/cluster

.PHONY: help demo deps fmt lint test test-unit e2e reliability controlplane ksm prometheus-operator tools image generate check-generated bench bench-micro render cluster-up cluster-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

demo: deps controlplane ## Local control plane + sample TAP environment + operator + Prometheus; Ctrl-C stops
	$(CARGO) run -q -p tapmon-e2e --locked --bin tapmon-demo

deps: ## Install what the tests use: promtool, openssl, bwrap, musl-gcc, lua5.1 (Debian), Python prometheus-client, the musl target
	@missing=""; for p in promtool:prometheus openssl:openssl bwrap:bubblewrap musl-gcc:musl-tools lua5.1:lua5.1; do \
		command -v $${p%%:*} >/dev/null || missing="$$missing $${p#*:}"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi
	@rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
	@python3 -c 'import prometheus_client' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check prometheus-client
	@promtool --version | head -1

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## rustfmt check and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

test: controlplane ksm prometheus-operator image ## Unit, CLI and end-to-end tests (run `make deps` once first)
	$(CARGO) test --workspace --locked

test-unit: ## Every test that needs no Go build and no cluster: unit, CLI, docs checks (seconds once built)
	$(CARGO) test --workspace --locked --exclude tapmon-e2e
	$(CARGO) test -p tapmon-e2e --locked --lib --bins

e2e: controlplane ksm prometheus-operator image ## Only the end-to-end tests against a real kube-apiserver
	$(CARGO) build --locked -p tapmon --bin tapmon
	$(CARGO) test -p tapmon-e2e --locked

controlplane: ## Build (or find cached) the loopback control plane from Go modules
	e2e/cluster.sh build

ksm: ## Build (or find cached) kube-state-metrics v2.20.0 for the side-by-side test
	e2e/cluster.sh build-ksm

prometheus-operator: ## Build (or find cached) the Prometheus Operator v0.85.0 the e2e tests run
	e2e/cluster.sh build-prometheus-operator

tools: ## Build (or find cached) crane and helm from e2e/tools
	e2e/cluster.sh build-tools

image: ## The container image (static binary, nothing else) as an OCI archive; prints its path last
	build/image.sh

generate: ## Regenerate crds/ (and the chart's copies) from the types, deploy/ from the chart, docs/metrics.md from the presets
	$(CARGO) run -q -p tapmon --locked -- crd --dir crds
	cp crds/tapmon.io_tapmonitors.yaml crds/tapmon.io_clustertapmonitors.yaml charts/tapmon/crds/
	cp crds/tapmon.io_admission-policy.yaml charts/tapmon/files/
	$(CARGO) run -q -p tapmon-e2e --locked --bin tapmon-generate-deploy
	$(CARGO) run -q -p tapmon --locked -- docs > docs/metrics.md

check-generated: generate ## Fail when a generated file differs from the committed one
	@# status, not diff: a generated file that is new and uncommitted counts too
	@test -z "$$(git status --porcelain -- crds charts deploy docs/metrics.md)" || \
	  { git status --short -- crds charts deploy docs/metrics.md; git diff -- crds charts deploy docs/metrics.md; exit 1; }

BENCH_ARGS ?= --objects 1000,10000,50000,200000

bench: controlplane ksm ## tapmon beside kube-state-metrics on generated objects; writes docs/benchmarks.md
	$(CARGO) build --release --locked -p tapmon -p tapmon-e2e --bin tapmon --bin tapmon-bench
	target/release/tapmon-bench $(BENCH_ARGS)

reliability: controlplane ## The fault suite with figures; writes docs/reliability.md (about 6 minutes)
	$(CARGO) build --locked -p tapmon -p tapmon-e2e --bin tapmon --bin tapmon-reliability
	target/debug/tapmon-reliability

bench-micro: ## Criterion: the selector engine, evaluate+render per object, scrape of 50k stored objects
	$(CARGO) bench -p tapmon-selector -p tapmon-exposition -p tapmon-presets --bench select --bench scrape --bench evaluate

render: ## Print the metrics of the fixture TAP environment (no cluster needed)
	$(CARGO) run -q -p tapmon --locked -- render --objects e2e/fixtures/tap

cluster-up: ## Start the loopback control plane (etcd, kube-apiserver, controller-manager) in $(STATE)
	e2e/cluster.sh up $(STATE)

cluster-down: ## Stop the loopback control plane
	e2e/cluster.sh down $(STATE)
