package config_test

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/meshauth/meshauth/internal/config"
)

// TestDocumentedVariables: .env.template and the configuration table of
// docs/configuration.md list exactly the variables the service reads.
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

	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if name, ok := tableVariable(line); ok {
			documented[name] = true
		}
	}
	if diff := difference(read, documented); len(diff) > 0 {
		t.Errorf("read but not in docs/configuration.md's table: %v", diff)
	}
	if diff := difference(documented, read); len(diff) > 0 {
		t.Errorf("in docs/configuration.md's table but never read: %v", diff)
	}
}

// tableVariable returns the variable a row of the configuration table names
// in its first cell: | `NAME` | default | meaning |.
func tableVariable(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "| `")
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "` |")
	if !ok || name == "" || strings.ToUpper(name) != name || strings.ContainsAny(name, " `") {
		return "", false
	}
	return name, true
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
