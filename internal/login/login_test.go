package login

import "testing"

func TestNormalizeEmail(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"ASCII lower case", "alice@example.com", "alice@example.com"},
		{"ASCII upper case folded", "ALICE@Example.COM", "alice@example.com"},
		{"surrounding ASCII space trimmed", " \t alice@example.com\r\n", "alice@example.com"},
		{"dotted capital I kept", "alİce@example.com", "alİce@example.com"},
		{"Kelvin sign kept", "\u212Aate@example.com", "\u212Aate@example.com"},
		{"long s kept", "\u017Fam@example.com", "\u017Fam@example.com"},
		{"non-ASCII capitals kept", "ÉLODIE@example.com", "Élodie@example.com"},
		{"no-break space kept", "alice@example.com\u00A0", "alice@example.com\u00A0"},
		{"empty", "  ", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizeEmail(tt.in); got != tt.want {
				t.Errorf("NormalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
