// Package composetest checks docker-compose.yml, the Dockerfile and
// .env.template at the repository root the way `docker compose` reads them.
//
// It is a module of its own so that compose-go and what it depends on
// (docker, logrus, jsonschema and more) stay out of the service's go.mod.
// Run it with `make test` at the repository root, or `go test ./...` here.
package composetest
