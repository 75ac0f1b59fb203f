package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// TestDescribe: the version comes from -ldflags, else the module version;
// the commit from -ldflags, else the build info's vcs.revision, marked when
// the tree had changes; a build with neither says so.
func TestDescribe(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		if rev != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.revision", Value: rev})
		}
		if modified != "" {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "vcs.modified", Value: modified})
		}
		return bi
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name, version, commit string
		bi                    *debug.BuildInfo
		want                  string
	}{
		{"make build in a checkout", "v1.4.0-3-g0123456", "", vcs(rev, "false"), "v1.4.0-3-g0123456 (commit 0123456789ab)"},
		{"changed tree", "v1.4.0-dirty", "", vcs(rev, "true"), "v1.4.0-dirty (commit 0123456789ab, modified)"},
		{"image, commit by -ldflags", "v1.4.0", rev, vcs("", ""), "v1.4.0 (commit 0123456789ab)"},
		{"go install of a release", "", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"go build, VCS stamping on", "", "", vcs(rev, "false"), "devel (commit 0123456789ab)"},
		{"go build outside a checkout", "", "", vcs("", ""), "devel"},
		{"no build info", "", "", nil, "devel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(tt.version, tt.commit, tt.bi); got != tt.want {
				t.Errorf("describe = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBinaryVersion: the binary that `make build` makes says which version
// and commit it is, in `meshauth version` and in its startup log.
func TestBinaryVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): nothing to stamp", err)
	}
	commit := strings.TrimSpace(string(head))[:12]
	built := filepath.Join(t.TempDir(), "meshauth")
	make := exec.Command("make", "-s", "build", "BIN="+built)
	make.Dir = root
	if out, err := make.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err := exec.Command(built, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("meshauth version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "commit "+commit) || strings.Contains(string(out), "devel") {
		t.Errorf("meshauth version printed %q, want the version and commit %s", out, commit)
	}
	saved := binary
	binary = built
	t.Cleanup(func() { binary = saved })
	p := startBinary(t, map[string]string{"APP_ENV": "development"})
	if logs := p.logs.String(); !strings.Contains(logs, "meshauth ready") || !strings.Contains(logs, commit) {
		t.Errorf("the startup log does not name the commit %s:\n%s", commit, logs)
	}
}

// TestHelpListsEveryCommand: meshauth --help lists every command with one
// line each, every command it lists runs, and the README lists the same
// commands.
func TestHelpListsEveryCommand(t *testing.T) {
	for _, flag := range []string{"--help", "-h", "help"} {
		out, err := exec.Command(binary, flag).Output()
		if err != nil {
			t.Fatalf("meshauth %s: %v", flag, err)
		}
		listed := commandLines(t, string(out))
		want := []string{"serve", "users", "migrate", "healthcheck", "version"}
		if !slices.Equal(slices.Sorted(slices.Values(listed)), slices.Sorted(slices.Values(want))) {
			t.Errorf("meshauth %s lists %v, want %v:\n%s", flag, listed, want, out)
		}
	}
	out, _ := exec.Command(binary, "--help").Output()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^- `meshauth ([a-z]+)").FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	if listed := commandLines(t, string(out)); !slices.Equal(documented, listed) {
		t.Errorf("the README lists the commands %v, meshauth --help %v (same order)", documented, listed)
	}
}

// commandLines returns the command names of the usage's Commands section:
// lines "  NAME  one line".
func commandLines(t *testing.T, usage string) []string {
	t.Helper()
	_, section, ok := strings.Cut(usage, "Commands:\n")
	if !ok {
		t.Fatalf("no Commands section in:\n%s", usage)
	}
	var names []string
	for _, line := range strings.Split(section, "\n") {
		if line == "" {
			break
		}
		f := strings.Fields(line)
		if !strings.HasPrefix(line, "  ") || len(f) < 2 {
			t.Fatalf("command line %q is not \"  NAME  what it does\"", line)
		}
		names = append(names, f[0])
	}
	return names
}
