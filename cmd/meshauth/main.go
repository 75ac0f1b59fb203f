// Command meshauth is the customer-session service for commerce GraphQL
// gateways. `meshauth --help` lists its commands: serve (the default),
// users, migrate, healthcheck and version.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/meshauth/meshauth"
)

// version and commit are set at build time by make build and the
// Dockerfile: -ldflags "-X main.version=... -X main.commit=...". Unset, the
// build info tells (describe).
var version, commit = "", ""

// A command of the binary, with its one line of help.
type command struct {
	name, summary string
	run           func(args []string) error
}

// commands are every command, in the order --help lists them; the README's
// command list is the same (a test keeps them in step).
var commands = []command{
	{"serve", "run the service (the default; configured by environment variables, see the README)", func([]string) error {
		return meshauth.Run(context.Background(), meshauth.Options{Version: versionString()})
	}},
	{"users", "manage the static provider's users file: add, remove, list (meshauth users -h)", func(args []string) error {
		return users(args, stdConsole())
	}},
	{"migrate", "create the DynamoDB table, its index and TTL setting (STORE=dynamodb; idempotent)", func([]string) error {
		if err := meshauth.Migrate(context.Background(), os.Getenv); err != nil {
			return err
		}
		fmt.Println("meshauth: DynamoDB table ready")
		return nil
	}},
	{"healthcheck", "exit 0 when the local service on LISTEN_ADDR and PORT is ready (for container health checks)", func([]string) error {
		return healthcheck(os.Getenv("LISTEN_ADDR"), os.Getenv("PORT"))
	}},
	{"version", "print the version and commit", func([]string) error {
		fmt.Println("meshauth", versionString())
		return nil
	}},
}

func main() {
	args := os.Args[1:]
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Print(usage())
		return
	case "-version", "--version":
		name = "version"
	}
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		fmt.Fprintf(os.Stderr, "meshauth: unknown command %q\n\n%s", name, usage())
		os.Exit(2)
	}
	if err := commands[i].run(args); err != nil {
		fmt.Fprintln(os.Stderr, "meshauth:", err)
		os.Exit(1)
	}
}

func usage() string {
	var b strings.Builder
	b.WriteString("Usage: meshauth [command]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nWithout a command, meshauth serves. Configuration: environment variables (docs/configuration.md).\n")
	return b.String()
}

func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return describe(version, commit, bi)
}

// describe says which build this is: the version given at build time, else
// the module's (go install of a release), else "devel"; and the commit
// given at build time, else the one Go stamped (vcs.revision, with
// "modified" when the tree had changes), shortened to 12 digits.
func describe(version, commit string, bi *debug.BuildInfo) string {
	modified := false
	if bi != nil {
		if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
		if commit == "" {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					commit = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
		}
	}
	if version == "" {
		version = "devel"
	}
	if commit == "" {
		return version
	}
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if modified {
		return version + " (commit " + commit + ", modified)"
	}
	return version + " (commit " + commit + ")"
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
