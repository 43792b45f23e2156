SHELL := /bin/bash
# swarmckpt. Two commands matter on a fresh machine (see README.md):
#   make demo   set up, bring up a 3-node lab, deploy a stack, snapshot/migrate/verify it
#   make test   lint + unit tests + integration tests on real labs (root, Docker, CRIU)
GO      ?= go
BIN     := bin
NODES   ?= 3
LAB     ?= lab
# The private-prefix criu wrapper lives in /usr/local/sbin; runc finds criu on PATH.
export PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$(PATH)

.PHONY: all setup build images images-thirdparty demo-thirdparty lint test test-unit test-integration lab-up lab-down demo \
        demo-drain bench bench-dataplane bench-sim bench-sim-1m bench-drain bench-algorithms bench-record test-bench-quick \
        bench-controlplane test-bench-controlplane clean faults

all: build

setup:
	deploy/setup/setup.sh

build:
	$(GO) build -o $(BIN)/swarmckpt ./cmd/swarmckpt
	@# The runtime runs inside containers of any image (network keepers): static, always.
	@if [ -d cmd/swarmckpt-runtime ]; then CGO_ENABLED=0 $(GO) build -o $(BIN)/swarmckpt-runtime ./cmd/swarmckpt-runtime; fi

images:
	benchmarks/workloads/build.sh

# Third-party servers (Debian's redis, memcached, busybox) as image tars in build/thirdparty
# (deploy/thirdparty/build.sh; the packages come from make setup).
images-thirdparty:
	deploy/thirdparty/build.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

test-unit:
	$(GO) test -count=1 ./...

# Integration tests on real labs (root, Docker, CRIU from make setup); see the script.
test-integration: build images images-thirdparty
	deploy/test-integration.sh

# The algorithm benchmark's quick mode (one repetition of bank-5 and scale-3 on its own
# 3-node lab, ~3 min): fails if an algorithm's snapshot fails or a coordinated one's cut
# is not consistent; writes build/bench-algorithms-quick/.
test-bench-quick: build images
	QUICK=1 benchmarks/algorithms/run.sh

test: lint test-unit test-integration test-bench-quick test-bench-controlplane

# Fault injection campaign (coordinator/faults_integration_test.go): RUNS seeded runs,
# each killing a worker, agent, coordinator or CRIU with -9 during a snapshot, restore or
# migration of the bank stack on a supervised 3-node lab, from seed SEED (run i: SEED+i;
# SEED=N RUNS=1 replays a failed run; SEEDS=1,4,5,8 runs those seeds only; FOR=30m starts
# no run after 30 min, so a campaign runs as many as fit). make test runs a short one
# (10 runs from seed 1).
RUNS ?= 100
SEED ?= 1
SEEDS ?=
FOR ?=
faults: build images
	@mkdir -p build
	SWARMCKPT_INTEGRATION=1 SWARMCKPT_BIN=$(CURDIR)/$(BIN)/swarmckpt SWARMCKPT_IMAGES=$(CURDIR)/build/workloads \
	  $(GO) test -count=1 -p 1 -timeout 0 -v -run 'TestIntegrationFaults$$' ./coordinator/ -args -runs $(RUNS) -seed $(SEED) $(if $(SEEDS),-seeds $(SEEDS)) $(if $(FOR),-for $(FOR)) \
	  2>&1 | tee build/faults.log | grep -E '^\s+(faults_integration_test.go|---)|FAULT|^(ok|FAIL|PASS)'; exit $${PIPESTATUS[0]}

lab-up: build images
	$(BIN)/swarmckpt lab up --name $(LAB) --nodes $(NODES)

lab-down:
	$(BIN)/swarmckpt lab down --name $(LAB)

demo: setup build images
	deploy/demo.sh

# Draining a node moves the labelled bank stack's holders with their memory (docs/drain.md):
# docker node update --availability drain, then swarmckpt node drain; the lab is removed.
demo-drain: setup build images
	deploy/demo-drain.sh

# Debian's redis (third-party software) snapshotted, verified and restored on a 3-node lab.
demo-thirdparty: setup build images-thirdparty
	deploy/thirdparty/demo.sh

bench: bench-sim bench-dataplane bench-algorithms

bench-sim: build
	benchmarks/sim/run.sh

# The simulator at 1,000,000 containers on 100,000 nodes, every algorithm (not in CI:
# several minutes, ~5 GiB; results in benchmarks/sim/RESULTS.md).
bench-sim-1m:
	CONTAINERS=1000000 NODES=100000 GRAPHS=ring BIN=$(BIN)/swarmckpt-sim benchmarks/sim/run.sh

# One snapshot round (markers out, acks back) with 1,000 simulated workers on a real
# (embedded) NATS server; benchmarks/controlplane/RESULTS.md. test-bench-controlplane is
# its short mode (20 rounds, ~10 s), part of make test.
bench-controlplane:
	$(GO) run ./benchmarks/controlplane
test-bench-controlplane:
	$(GO) run ./benchmarks/controlplane --short

bench-dataplane: build images
	benchmarks/dataplane/run.sh

# The drain race of docs/drain.md: drain -> swarm's kill -> replacement, holds, dump costs
# on a 3-node lab whose runtime is the logging probe (benchmarks/drain/run.sh; REPS=20),
# then an unlabelled stack's drain with the real wrapper vs plain runc (a second lab).
bench-drain: build images
	benchmarks/drain/run.sh
# Algorithms vs baselines on real stacks (benchmarks/algorithms/RESULTS.md); a 3-node lab
# of its own. BENCH_ARGS e.g. '--reps 3 --shapes bank-5,mixed'; QUICK=1 for the CI mode.
BENCH_ARGS ?=
bench-algorithms: build images
	benchmarks/algorithms/run.sh $(BENCH_ARGS)

# The snapshot record at scale: 50 and 5,000 containers of fake nodes on a real embedded
# etcd (benchmarks/recordscale; no lab, ~1 min, ~2 GiB).
bench-record:
	go run ./benchmarks/recordscale --sizes 50,5000 --reps 3

clean:
	rm -rf $(BIN) build
