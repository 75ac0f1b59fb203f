// Command meshauth is the customer-session service for commerce GraphQL gateways.
//
//	meshauth [serve]                     run the service (configured by env vars)
//	meshauth migrate                     create the DynamoDB table (STORE=dynamodb)
//	meshauth users add|remove|list ...   manage the static provider's users file
//	meshauth healthcheck                 exit 0 when the local service on LISTEN_ADDR and PORT is ready
//	meshauth version                     print the version
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/meshauth/meshauth"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise
// the module version from the build info is shown.
var version = ""

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = meshauth.Run(context.Background(), meshauth.Options{Version: versionString()})
	case "migrate":
		err = meshauth.Migrate(context.Background(), os.Getenv)
		if err == nil {
			fmt.Println("meshauth: DynamoDB table ready")
		}
	case "users":
		err = users(args, stdConsole())
	case "healthcheck":
		err = healthcheck(os.Getenv("LISTEN_ADDR"), os.Getenv("PORT"))
	case "version", "-version", "--version":
		fmt.Println("meshauth", versionString())
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "meshauth: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshauth:", err)
		os.Exit(1)
	}
}

const usage = `Usage:
  meshauth [serve]                                  run the service (configuration: env vars, see README)
  meshauth users add -file F -email E -customer-id ID   add or replace a user; password read from stdin
  meshauth users remove -file F -email E             remove a user
  meshauth users list -file F                        list users (emails and customer ids)
  meshauth migrate                                  create the DynamoDB table, index and TTL setting (idempotent)
  meshauth healthcheck                              exit 0 when the local service on LISTEN_ADDR and PORT is ready (for container health checks)
  meshauth version                                  print the version
`

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// healthcheck asks the service on this machine's port whether it is ready:
// a health check for images without curl. It asks on loopback, unless
// LISTEN_ADDR names one address other than every interface's.
func healthcheck(listenAddr, port string) error {
	if port == "" {
		port = "4000"
	}
	host := strings.Trim(strings.TrimSpace(listenAddr), "[]")
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	c := http.Client{Timeout: 2 * time.Second}
	res, err := c.Get("http://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /readyz answered %d", res.StatusCode)
	}
	return nil
}
