.PHONY: run test build generate

# Run the service on the embedded store in development mode.
run:
	APP_ENV=development go run ./cmd/meshauth

# Every test, with the race detector.
test:
	go vet ./...
	go test -race -count=1 ./...

build:
	CGO_ENABLED=0 go build -trimpath -o bin/meshauth ./cmd/meshauth

generate:
	go generate ./...
