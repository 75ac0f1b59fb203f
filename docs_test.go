package meshauth

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocLinks: every relative link in the README and docs/ names a file or
// directory that exists, and every #fragment a heading of its page.
func TestDocLinks(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "README.md", "examples/storefront/README.md")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(outsideCode(string(text)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, fragment, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), path)
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s: link to %s: no such file", page, target)
					continue
				}
			}
			if fragment != "" && !hasAnchor(t, file, fragment) {
				t.Errorf("%s: link to %s: no such heading", page, target)
			}
		}
	}
}

// outsideCode drops fenced code blocks, whose brackets are not links.
func outsideCode(text string) string {
	var b strings.Builder
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// hasAnchor reports whether a Markdown file has a heading whose GitHub anchor
// is fragment: lower case, punctuation dropped, spaces as hyphens.
func hasAnchor(t *testing.T, file, fragment string) bool {
	t.Helper()
	text, err := os.ReadFile(file)
	if err != nil {
		t.Errorf("%s: %v", file, err)
		return false
	}
	for _, line := range strings.Split(outsideCode(string(text)), "\n") {
		heading := strings.TrimLeft(line, "#")
		if heading == line || !strings.HasPrefix(heading, " ") {
			continue
		}
		var slug strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
			switch {
			case r == ' ':
				slug.WriteByte('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				slug.WriteRune(r)
			}
		}
		if slug.String() == fragment {
			return true
		}
	}
	return false
}
