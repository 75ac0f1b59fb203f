package composetest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/meshauth/meshauth/internal/config"
)

// root is the repository root, where docker-compose.yml, the Dockerfile and
// .env.template live, seen from this directory.
const root = "../.."

// TestDockerCompose loads docker-compose.yml as `docker compose` would (no
// Docker engine runs here) after `cp .env.template .env`, and checks what
// running it depends on.
func TestDockerCompose(t *testing.T) {
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"docker-compose.yml", "Dockerfile", ".env.template"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("repository root %s: %v", dir, err)
		}
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir),
		cli.WithEnvFiles(filepath.Join(dir, ".env.template")),
		cli.WithDotEnv,
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
		"APP_ENV": "development", "STORE": "dynamodb", "DYNAMO_DB_CREATE_TABLE": "true",
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
	if _, err := config.Load(func(k string) string { return env[k] }); err != nil {
		t.Errorf("compose's environment is not a valid configuration: %v", err)
	}
}
