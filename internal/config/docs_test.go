package config_test

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/meshauth/meshauth/internal/config"
)

// TestDocumentedVariables: .env.template and the README's configuration table
// list exactly the variables the service reads.
func TestDocumentedVariables(t *testing.T) {
	read := map[string]bool{}
	for _, v := range config.Variables {
		read[v] = true
	}

	f, err := os.Open("../../.env.template")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	template := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf(".env.template: %q is not NAME=value", line)
		}
		template[name] = true
	}
	if diff := difference(read, template); len(diff) > 0 {
		t.Errorf("read but not in .env.template: %v", diff)
	}
	if diff := difference(template, read); len(diff) > 0 {
		t.Errorf("in .env.template but never read: %v", diff)
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for v := range read {
		if !strings.Contains(string(readme), "| `"+v+"` |") {
			t.Errorf("README's configuration table lacks %s", v)
		}
	}
}

func difference(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
