# EffServe — build, run and test. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The address clients use. Triton's gRPC port by default; override with `make run PORT=9001`
# or the environment variable EFFSERVE_PORT.
EFFSERVE_PORT ?= 8001
PORT ?= $(EFFSERVE_PORT)
HOST ?= 127.0.0.1
ZOO ?= $(CURDIR)/zoo
CONFIGURATION ?= Release
DOTNET ?= dotnet
PYTHON ?= /usr/bin/python3
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1
export DOTNET_SKIP_FIRST_TIME_EXPERIENCE := 1

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

.PHONY: prerequisites
prerequisites:
	@command -v $(DOTNET) >/dev/null || { echo "The .NET SDK 10 is required (https://dot.net); install it and retry." >&2; exit 1; }

.PHONY: build
build: prerequisites ## Restore and build everything
	$(DOTNET) build EffServe.sln -c $(CONFIGURATION) -v quiet -nologo

# What `make run` and `make cli` run (the gateway, the inference service, the CLI) is built in one
# go from services/local.slnf, and only when a source is newer than the last build: a repeated
# `make cli` starts the built CLI at once.
LOCAL_BUILT := artifacts/run/built-$(CONFIGURATION)
LOCAL_SOURCES = $(shell find services tests/perf/EffServe.LoadGen \( -name bin -o -name obj \) -prune -o -type f \( -name '*.cs' -o -name '*.csproj' -o -name '*.proto' -o -name '*.json' -o -name '*.slnf' \) -print) \
	Directory.Build.props Directory.Packages.props global.json

$(LOCAL_BUILT): $(LOCAL_SOURCES)
	@command -v $(DOTNET) >/dev/null || { echo "The .NET SDK 10 is required (https://dot.net); install it and retry." >&2; exit 1; }
	$(DOTNET) build services/local.slnf -c $(CONFIGURATION) -v quiet -nologo
	@mkdir -p $(@D) && touch $@

# Prometheus /metrics for every process: METRICS_URL=http://127.0.0.1:9464 gives the gateway that
# port and each inference service the next one (port 0: free ports); make run prints each address.
METRICS_URL ?=

.PHONY: run
run: prerequisites ## Serve the demo zoo through the gateway on localhost:$(PORT) until Ctrl-C or SIGTERM (ZOO=DIR, METRICS_URL=http://127.0.0.1:9464)
	@bash services/run-local.sh --check --zoo "$(ZOO)" --host $(HOST) --port $(PORT) $(if $(METRICS_URL),--metrics-url $(METRICS_URL))
	@$(MAKE) --no-print-directory $(LOCAL_BUILT)
	@exec bash services/run-local.sh --zoo "$(ZOO)" --host $(HOST) --port $(PORT) --configuration $(CONFIGURATION) $(if $(METRICS_URL),--metrics-url $(METRICS_URL))

.PHONY: test
test: prerequisites ## Build and run every test; ends with a "tests: N passed, N failed" line
	bash tests/run-tests.sh

# The CLI calls, in this order: the HOST/PORT (or EFFSERVE_PORT) given to make or in the
# environment, else EFFSERVE_ENDPOINT, else the address a running `make run` serves on, else $(HOST):$(PORT).
CLI_ADDRESS_GIVEN := $(filter command line environment,$(origin PORT) $(origin EFFSERVE_PORT) $(origin HOST))

.PHONY: cli
cli: $(LOCAL_BUILT) ## Run the effserve CLI against the running EffServe: make cli ARGS="infer --model digits --sample 3"
	@endpoint=http://$(HOST):$(PORT); \
	if [ -z "$(CLI_ADDRESS_GIVEN)" ]; then \
	  if [ -n "$$EFFSERVE_ENDPOINT" ]; then endpoint=$$EFFSERVE_ENDPOINT; \
	  elif [ -f artifacts/run/endpoint ] && read -r running pid < artifacts/run/endpoint && kill -0 "$$pid" 2>/dev/null; then endpoint=$$running; fi; \
	fi; \
	exec $(EFFSERVE_CLI) --endpoint "$$endpoint" $(ARGS)

.PHONY: zoo-train
zoo-train: ## Retrain the demo models (digits: seconds; shapes: ~8 min) and rebuild the test fixtures (needs Debian's python3-torch, python3-onnx, python3-sklearn)
	@$(PYTHON) -c "import torch, onnx, sklearn" 2>/dev/null || { echo "Installing Debian's python3-torch python3-onnx python3-sklearn ..."; apt-get update -qq && apt-get install -y -qq python3-torch python3-torchvision python3-onnx python3-sklearn; }
	$(PYTHON) zoo/scripts/train_digits.py
	$(PYTHON) zoo/scripts/train_shapes.py
	$(PYTHON) zoo/scripts/make_typed_fixture.py

.PHONY: clean
clean: ## Remove build outputs
	$(DOTNET) clean EffServe.sln -v quiet -nologo
	rm -rf artifacts

.PHONY: bench
bench: prerequisites ## Foundation benchmark: digits latency through the wire and in process, accuracy per exit threshold
	$(DOTNET) build tests/perf/EffServe.Bench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.Bench/bin/Release/net10.0/EffServe.Bench.dll $(BENCH_ARGS)

.PHONY: bench-gateway
bench-gateway: prerequisites ## Gateway hop vs nginx grpc_pass in front of the same service (installs Debian's nginx when missing)
	@command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
	$(DOTNET) build tests/perf/EffServe.GatewayBench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll $(BENCH_ARGS)

.PHONY: bench-overload
bench-overload: prerequisites ## Gateway under overload: shapes open loop at 1x, 1.5x, 2x its measured capacity, 1 s deadlines: goodput, answers by status, memory, into artifacts/bench-overload (BENCH_ARGS="--quick" for a smoke run)
	$(DOTNET) build tests/perf/EffServe.GatewayBench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll overload $(BENCH_ARGS)

.PHONY: build-gpu
build-gpu: prerequisites ## Build the inference service's GPU flavour (ONNX Runtime CUDA/TensorRT; CUDA 13 + cuDNN 9 at run time) into artifacts/gpu
	$(DOTNET) build services/EffServe.Inference -c $(CONFIGURATION) -p:EffServeGpu=true -o artifacts/gpu -v quiet -nologo

EFFSERVE_CLI := $(DOTNET) services/EffServe.Cli/bin/$(CONFIGURATION)/net10.0/effserve.dll

.PHONY: zoo
zoo: prerequisites ## Regenerate every derived variant (int8, fp16, early-exit) and every profile of the committed zoo from its fp32 models
	$(DOTNET) build services/EffServe.Cli -c $(CONFIGURATION) -v quiet -nologo
	$(EFFSERVE_CLI) zoo quantize --zoo $(ZOO) -m digits --method percentile --force
	$(EFFSERVE_CLI) zoo fp16 --zoo $(ZOO) -m digits --force
	$(EFFSERVE_CLI) zoo early-exit --zoo $(ZOO) -m digits --name early-exit --force \
		--cut '/block1/block1.1/Relu_output_0=features1,/block2/block2.2/MaxPool_output_0=features2' \
		--exits exit1_logits,exit2_logits,logits
	$(EFFSERVE_CLI) zoo profile --zoo $(ZOO) -m digits
	$(EFFSERVE_CLI) zoo quantize --zoo $(ZOO) -m shapes --method percentile --calibration $(ZOO)/shapes/calib/images.npy --force
	$(EFFSERVE_CLI) zoo fp16 --zoo $(ZOO) -m shapes --force
	$(EFFSERVE_CLI) zoo early-exit --zoo $(ZOO) -m shapes --name early-exit --force \
		--cut '/block1/block1.2/Relu_output_0=features1,/block2/block2.2/MaxPool_output_0=features2' \
		--exits exit1_logits,exit2_logits,logits
	$(EFFSERVE_CLI) zoo profile --zoo $(ZOO) -m shapes

.PHONY: bench-telemetry
bench-telemetry: prerequisites ## Telemetry overhead: off vs metrics as shipped (no collector) vs metrics only vs 1 in 10 vs every request traced, interleaved (BENCH_ARGS="15 5000 200 --model shapes")
	$(DOTNET) build tests/perf/EffServe.TelemetryBench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.TelemetryBench/bin/Release/net10.0/EffServe.TelemetryBench.dll $(BENCH_ARGS)

PUBLISH_DIR ?= $(CURDIR)/artifacts/publish

.PHONY: publish
publish: prerequisites ## Publish the gateway and the inference service as the CPU images ship them (self-contained linux-x64) into artifacts/publish
	bash k8s/images/publish.sh gateway $(PUBLISH_DIR)/gateway
	bash k8s/images/publish.sh inference $(PUBLISH_DIR)/inference

.PHONY: publish-gpu
publish-gpu: prerequisites ## Publish the inference service as the GPU image ships it into artifacts/publish/inference-gpu
	bash k8s/images/publish.sh inference-gpu $(PUBLISH_DIR)/inference-gpu

HELM ?= $(CURDIR)/artifacts/tools/node_modules/.bin/helm

.PHONY: helm-check
helm-check: ## Lint and render the Helm chart for every value set, check the objects against Kubernetes schemas and our rules, and the plain manifests against the chart
	bash tests/prerequisites.sh
	$(DOTNET) test --project tests/EffServe.Deploy.Tests -c $(CONFIGURATION) -- --filter-not-trait 'Category=Publish'

.PHONY: bench-slo
bench-slo: prerequisites ## T3: slo-aware vs fixed fp32/int8/early-exit serving shapes, same seeded mixed-SLO trace at rising rates, into artifacts/bench-slo (BENCH_ARGS="--quick" for a smoke run)
	$(DOTNET) build tests/perf/EffServe.SloBench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.SloBench/bin/Release/net10.0/EffServe.SloBench.dll $(BENCH_ARGS)

.PHONY: bench-cache
bench-cache: prerequisites ## Response cache hit vs miss and on vs off through the gateway, a job vs the same items online, against a real redis-server (installs Debian's redis-server when missing; BENCH_ARGS="--quick" for a smoke run)
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server; }
	$(DOTNET) build tests/perf/EffServe.CacheBench -c Release -v quiet -nologo
	$(DOTNET) tests/perf/EffServe.CacheBench/bin/Release/net10.0/EffServe.CacheBench.dll $(BENCH_ARGS)
