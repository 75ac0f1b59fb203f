.PHONY: run test lint e2e browser fuzz build generate

# The compose-file check is a module of its own (deploy/composetest), so that
# compose-go and its dependencies stay out of the service's go.mod.
COMPOSETEST := deploy/composetest

# Pinned tools, run with `go run PKG@VERSION`: built from the module proxy,
# never added to go.mod.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Run the service on the embedded store in development mode.
run:
	APP_ENV=development go run ./cmd/meshauth

# Every test, with the race detector, DynamoDB Local included (the script
# installs and starts it, and stops it afterwards).
test:
	go vet ./...
	scripts/dynamodb-local.sh run -- go test -race -count=1 ./...
	cd $(COMPOSETEST) && go vet ./... && go test -race -count=1 ./...

# staticcheck on both modules (graph/staticcheck.conf says what is off there
# and why).
#
# Vulnerability scanning is not run here: govulncheck downloads its
# vulnerability database from the internet, which CI cannot reach. Pipelines
# with internet access should run, in the repository root and in $(COMPOSETEST):
#   go run golang.org/x/vuln/cmd/govulncheck@v1.9.0 ./...
lint:
	go run $(STATICCHECK) ./...
	cd $(COMPOSETEST) && go run $(STATICCHECK) ./...

# The service behind Apollo Gateway, Hive Gateway and GraphQL Mesh.
e2e:
	e2e/run.sh

# A demo storefront in headless Chromium: cookie mode, three tabs refreshing at once.
browser:
	browser/run.sh

# Each fuzz target for FUZZTIME (default 20s).
fuzz:
	scripts/fuzz.sh

# The version is `git describe` (tag, commits since, short commit, -dirty)
# and the commit `git rev-parse HEAD`, both given to the linker: Go's own
# VCS stamping misses git worktrees and is off where GOFLAGS says
# -buildvcs=false. Outside a git checkout the version is "devel", there is
# no commit, and the build works the same.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BIN ?= bin/meshauth
build:
	CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$(VERSION) -X main.commit=$(COMMIT)" -o $(BIN) ./cmd/meshauth

generate:
	go generate ./...
