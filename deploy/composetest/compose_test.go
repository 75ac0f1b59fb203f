package composetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/meshauth/meshauth/internal/config"
)

// root is the repository root, where docker-compose.yml, the Dockerfile and
// .env.template live, seen from this directory.
const root = "../.."

// load loads docker-compose.yml as `docker compose` would (no Docker
// engine runs here) after `cp .env.template .env`, with the shell's
// environment replaced by shell.
func load(t *testing.T, shell map[string]string) *types.Project {
	t.Helper()
	return loadWith(t, shell, "")
}

// loadWith is load with dotenv appended to the .env that
// `cp .env.template .env` made, as a user's edit of it.
func loadWith(t *testing.T, shell map[string]string, dotenv string) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"docker-compose.yml", "Dockerfile", ".env.template"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("repository root %s: %v", dir, err)
		}
	}
	var env []string
	for k, v := range shell {
		env = append(env, k+"="+v)
	}
	envFile := filepath.Join(dir, ".env.template")
	if dotenv != "" {
		b, err := os.ReadFile(envFile)
		if err != nil {
			t.Fatal(err)
		}
		envFile = filepath.Join(t.TempDir(), ".env")
		if err := os.WriteFile(envFile, append(b, "\n"+dotenv+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithEnv(env),
		cli.WithName("meshauth"),
		cli.WithProfiles([]string{"admin"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

// TestDockerCompose loads docker-compose.yml and checks what running it
// depends on.
func TestDockerCompose(t *testing.T) {
	project := load(t, nil)

	ddb, err := project.GetService("dynamodb-local")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-inMemory", "-disableTelemetry"} {
		if !slices.Contains(ddb.Command, flag) {
			t.Errorf("dynamodb-local runs without %s: %v", flag, ddb.Command)
		}
	}
	if ddb.HealthCheck == nil || len(ddb.HealthCheck.Test) == 0 {
		t.Error("dynamodb-local has no health check")
	}

	svc, err := project.GetService("meshauth")
	if err != nil {
		t.Fatal(err)
	}
	if svc.Build == nil || svc.Build.Context == "" {
		t.Error("meshauth is not built from the Dockerfile")
	} else if _, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile)); err != nil || svc.Build.Dockerfile == "" {
		t.Errorf("meshauth's Dockerfile %q: %v", svc.Build.Dockerfile, err)
	}
	if dep, ok := svc.DependsOn["dynamodb-local"]; !ok || dep.Condition != types.ServiceConditionHealthy {
		t.Error("meshauth does not wait for a healthy dynamodb-local")
	}
	if svc.HealthCheck == nil || !slices.Contains(svc.HealthCheck.Test, "healthcheck") {
		t.Error("meshauth has no health check")
	}
	want := map[string]string{
		// The container listens on every interface inside; what the host
		// publishes is decided by the ports (TestPublishedOnLoopback).
		"LISTEN_ADDR": "0.0.0.0",
		"APP_ENV":     "development", "STORE": "dynamodb", "DYNAMO_DB_CREATE_TABLE": "true",
		"DYNAMO_DB_ENDPOINT": "http://dynamodb-local:8000", "DYNAMO_DB_REGION": "us-east-1",
	}
	for k, v := range want {
		if got := svc.Environment[k]; got == nil || *got != v {
			t.Errorf("meshauth %s = %v, want %s", k, got, v)
		}
	}
	// Every variable compose passes is one the service (or the AWS SDK) reads.
	for k := range svc.Environment {
		if !slices.Contains(config.Variables, k) && !strings.HasPrefix(k, "AWS_") {
			t.Errorf("compose sets %s, which the service never reads", k)
		}
	}
	// The configuration compose produces is valid.
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Errorf("compose's environment is not a valid configuration: %v", err)
	}
	if cfg.ListenAddr != config.AllInterfaces {
		t.Errorf("in the container meshauth listens on %s, want every interface (%s): the published port would reach nothing", cfg.ListenAddr, config.AllInterfaces)
	}
}

// TestPublishedOnLoopback: compose runs development mode, whose session
// tools and GraphiQL answer without credentials, and DynamoDB Local, which
// takes any credentials: every port is published on the host's loopback
// unless MESHAUTH_PUBLISH_ADDR says otherwise.
func TestPublishedOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shell map[string]string
		want  string
	}{
		{"by default", nil, "127.0.0.1"},
		{"MESHAUTH_PUBLISH_ADDR=0.0.0.0", map[string]string{"MESHAUTH_PUBLISH_ADDR": "0.0.0.0"}, "0.0.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			project := load(t, tc.shell)
			published := 0
			for _, name := range []string{"meshauth", "dynamodb-local", "dynamodb-admin"} {
				svc, err := project.GetService(name)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range svc.Ports {
					published++
					if p.HostIP != tc.want {
						t.Errorf("%s publishes %s on host address %q, want %s", name, p.Published, p.HostIP, tc.want)
					}
				}
			}
			if published == 0 {
				t.Fatal("no port is published")
			}
		})
	}
}

// TestDockerfileListensOnEveryInterface: the image listens on every
// interface inside the container whatever APP_ENV says (development would
// otherwise mean loopback, which no published port reaches).
func TestDockerfileListensOnEveryInterface(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "ENV" && slices.Contains(fields[1:], "LISTEN_ADDR=0.0.0.0") {
			return
		}
	}
	t.Error("the Dockerfile sets no ENV LISTEN_ADDR=0.0.0.0")
}

// TestPortFromDotEnv: PORT set in .env is the port meshauth listens on in
// the container, the one its health check asks, and the one published on
// the host; unset, all three are 4000.
func TestPortFromDotEnv(t *testing.T) {
	for _, tc := range []struct {
		name, dotenv, want string
	}{
		{"unset", "", "4000"},
		{"PORT=4100 in .env", "PORT=4100", "4100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc, err := loadWith(t, nil, tc.dotenv).GetService("meshauth")
			if err != nil {
				t.Fatal(err)
			}
			if got := svc.Environment["PORT"]; got == nil || *got != tc.want {
				t.Errorf("meshauth's PORT = %s, want %s", deref(got), tc.want)
			}
			if len(svc.Ports) != 1 || svc.Ports[0].Published != tc.want || svc.Ports[0].Target != mustPort(t, tc.want) {
				t.Errorf("meshauth publishes %+v, want %s on the host to %s in the container", svc.Ports, tc.want, tc.want)
			}
		})
	}
}

func mustPort(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

// TestTableRecreatedWhenDynamoDBLocalRestarts: DynamoDB Local runs in
// memory, so when it alone restarts the table is gone. meshauth's
// readiness check creates it again (DYNAMO_DB_CREATE_TABLE=true, tested
// against DynamoDB Local in internal/server), compose's health check asks
// that readiness check, and the file says so where a reader looks.
func TestTableRecreatedWhenDynamoDBLocalRestarts(t *testing.T) {
	svc, err := load(t, nil).GetService("meshauth")
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Environment["DYNAMO_DB_CREATE_TABLE"]; got == nil || *got != "true" {
		got := deref(got)
		t.Errorf("DYNAMO_DB_CREATE_TABLE = %s, want true: a restarted DynamoDB Local would leave meshauth without its table", got)
	}
	if svc.HealthCheck == nil || !slices.Contains(svc.HealthCheck.Test, "healthcheck") {
		t.Error("meshauth's health check does not ask its readiness check")
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, say := range []string{"in memory", "created again", "sessions"} {
		if !strings.Contains(strings.ToLower(string(b)), say) {
			t.Errorf("docker-compose.yml does not say, about DynamoDB Local's restarts, %q", say)
		}
	}
}

func deref(p *string) string {
	if p == nil {
		return "(unset)"
	}
	return *p
}

// TestBuildNamesVersion: the image is built with the shell's VERSION and
// COMMIT as build arguments the Dockerfile declares ("devel" and empty
// without them), so that a compose-built binary says what it is.
func TestBuildNamesVersion(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"ARG VERSION", "ARG COMMIT"} {
		if !strings.Contains(string(b), "\n"+arg) {
			t.Errorf("the Dockerfile declares no %s", arg)
		}
	}
	for _, tc := range []struct {
		shell         map[string]string
		version, comm string
	}{
		{nil, "devel", ""},
		{map[string]string{"VERSION": "v1.4.0", "COMMIT": "0123abc"}, "v1.4.0", "0123abc"},
	} {
		svc, err := load(t, tc.shell).GetService("meshauth")
		if err != nil {
			t.Fatal(err)
		}
		if svc.Build == nil {
			t.Fatal("meshauth is not built")
		}
		got := func(k string) string {
			if v := svc.Build.Args[k]; v != nil {
				return *v
			}
			return ""
		}
		if got("VERSION") != tc.version || got("COMMIT") != tc.comm {
			t.Errorf("shell %v: build args VERSION=%q COMMIT=%q, want %q and %q", tc.shell, got("VERSION"), got("COMMIT"), tc.version, tc.comm)
		}
	}
}
