package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
	t0      = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
)

func newCodec(t *testing.T, secret []byte) *Codec {
	t.Helper()
	c, err := NewCodec(secret)
	if err != nil {
		t.Fatalf("NewCodec: %v", err)
	}
	return c
}

func newSID(t *testing.T) string {
	t.Helper()
	sid, err := NewSessionID()
	if err != nil {
		t.Fatalf("NewSessionID: %v", err)
	}
	return sid
}

func issue(t *testing.T, c *Codec, sid string, created, expires time.Time) Refresh {
	t.Helper()
	r, err := c.Issue(sid, created, expires)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return r
}

func decode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("decode token: %v", err)
	}
	return b
}

func TestNewCodecSecretLength(t *testing.T) {
	tests := []struct {
		name    string
		secret  []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"31 bytes", bytes.Repeat([]byte("k"), 31), true},
		{"32 bytes", bytes.Repeat([]byte("k"), 32), false},
		{"64 bytes", bytes.Repeat([]byte("k"), 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCodec(tt.secret)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewCodec(%d bytes) error = %v, want error %v", len(tt.secret), err, tt.wantErr)
			}
			if !tt.wantErr && c == nil {
				t.Fatal("NewCodec returned nil codec without error")
			}
		})
	}
}

func TestNewSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		sid := newSID(t)
		if len(sid) != 22 {
			t.Fatalf("session id %q has %d chars, want 22", sid, len(sid))
		}
		if b, err := base64.RawURLEncoding.DecodeString(sid); err != nil || len(b) != 16 {
			t.Fatalf("session id %q is not 16 bytes of URL-safe base64 (err %v)", sid, err)
		}
		if seen[sid] {
			t.Fatalf("session id %q issued twice", sid)
		}
		seen[sid] = true
	}
}

func TestIssueParseRoundTrip(t *testing.T) {
	c := newCodec(t, secretA)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	tests := []struct {
		name             string
		created, expires time.Time
	}{
		{"whole seconds UTC", t0, t0.Add(15 * time.Minute)},
		{"sub-second times are truncated", t0.Add(999 * time.Millisecond), t0.Add(time.Hour + time.Nanosecond)},
		{"non-UTC zone is normalised", t0.In(zone), t0.Add(30 * 24 * time.Hour).In(zone)},
		{"created equals expires", t0, t0},
		{"unix epoch", time.Unix(0, 0), time.Unix(1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sid := newSID(t)
			wantCreated := tt.created.Truncate(time.Second).UTC()
			wantExpires := tt.expires.Truncate(time.Second).UTC()

			issued := issue(t, c, sid, tt.created, tt.expires)
			parsed, err := c.Parse(issued.String())
			if err != nil {
				t.Fatalf("Parse(Issue()) = %v", err)
			}
			for _, got := range []struct {
				what string
				r    Refresh
			}{{"issued", issued}, {"parsed", parsed}} {
				if got.r.SessionID != sid {
					t.Errorf("%s SessionID = %q, want %q", got.what, got.r.SessionID, sid)
				}
				if !got.r.Created.Equal(wantCreated) || got.r.Created.Location() != time.UTC {
					t.Errorf("%s Created = %v, want %v in UTC", got.what, got.r.Created, wantCreated)
				}
				if !got.r.Expires.Equal(wantExpires) || got.r.Expires.Location() != time.UTC {
					t.Errorf("%s Expires = %v, want %v in UTC", got.what, got.r.Expires, wantExpires)
				}
			}
			if parsed.String() != issued.String() {
				t.Errorf("parsed token re-encodes as %q, want %q", parsed.String(), issued.String())
			}
		})
	}
}

func TestStringFormat(t *testing.T) {
	c := newCodec(t, secretA)
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	for range 50 {
		s := issue(t, c, newSID(t), t0, t0.Add(time.Hour)).String()
		if len(s) != EncodedLen {
			t.Fatalf("len(%q) = %d, want EncodedLen %d", s, len(s), EncodedLen)
		}
		if !urlSafe.MatchString(s) {
			t.Fatalf("token %q is not unpadded URL-safe base64", s)
		}
	}
	// 81 bytes of content, a multiple of 3: 108 characters, no padding and
	// no spare bits, so every token has exactly one encoding.
	if EncodedLen != 108 {
		t.Errorf("EncodedLen = %d, want 108", EncodedLen)
	}
}

func TestParseRejects(t *testing.T) {
	c := newCodec(t, secretA)
	good := issue(t, c, newSID(t), t0, t0.Add(time.Hour))
	s := good.String()

	// reversion re-tags the token under c with another version byte, so that
	// only the version check can reject it.
	reversion := func(v byte) string {
		r := good
		r.raw[0] = v
		copy(r.raw[offTag:], c.tagOf(nil, r.raw[:offTag]))
		return r.String()
	}
	other := issue(t, newCodec(t, secretB), good.SessionID, t0, t0.Add(time.Hour)).String()

	tests := []struct {
		name, token string
	}{
		{"empty", ""},
		{"one character short", s[:len(s)-1]},
		{"one character long", s + "A"},
		{"doubled", s + s},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(s[:len(s)-1]) + "+"},
		{"padding character", s[:len(s)-1] + "="},
		{"not base64", s[:10] + "*" + s[11:]},
		{"whitespace", s[:len(s)-1] + " "},
		{"version 0 with valid tag", reversion(0)},
		{"version 2 with valid tag", reversion(2)},
		{"issued under another secret", other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == s {
				t.Fatal("test case is the valid token itself")
			}
			r, err := c.Parse(tt.token)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %v, want ErrMalformed", err)
			}
			if r.SessionID != "" || !r.Created.IsZero() || !r.Expires.IsZero() {
				t.Errorf("Parse returned content %+v with its error", r)
			}
		})
	}
	if _, err := c.Parse(reversion(version)); err != nil {
		t.Fatalf("control: Parse of the valid token re-tagged by the test = %v", err)
	}
}

func TestParseRejectsEveryFlippedByte(t *testing.T) {
	c := newCodec(t, secretA)
	s := issue(t, c, newSID(t), t0, t0.Add(time.Hour)).String()
	raw := decode(t, s)
	for i := range raw {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= mask
			if _, err := c.Parse(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrMalformed) {
				t.Errorf("byte %d ^ %#02x: Parse = %v, want ErrMalformed", i, mask, err)
			}
		}
	}
}

func TestIssueRejectsBadSessionID(t *testing.T) {
	c := newCodec(t, secretA)
	tests := []struct{ name, sid string }{
		{"empty", ""},
		{"too short", "abc"},
		{"17 bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 17))},
		{"15 bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 15))},
		{"padded standard base64", base64.StdEncoding.EncodeToString(make([]byte, 16))},
		{"not base64", "!!!!!!!!!!!!!!!!!!!!!!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Issue(tt.sid, t0, t0.Add(time.Hour)); err == nil {
				t.Fatalf("Issue(%q) succeeded, want error", tt.sid)
			}
		})
	}
}

func TestIssueUsesRandomSecret(t *testing.T) {
	c := newCodec(t, secretA)
	sid := newSID(t)
	a := issue(t, c, sid, t0, t0.Add(time.Hour))
	b := issue(t, c, sid, t0, t0.Add(time.Hour))
	if a.String() == b.String() {
		t.Fatal("two Issue calls for the same session and times gave the same token")
	}
	if bytes.Equal(c.Hash(a), c.Hash(b)) {
		t.Fatal("two Issue calls for the same session and times gave the same hash")
	}
}

func TestNext(t *testing.T) {
	c := newCodec(t, secretA)
	sid := newSID(t)
	first := issue(t, c, sid, t0, t0.Add(15*time.Minute))
	sibling := issue(t, c, sid, t0, t0.Add(15*time.Minute))
	parsedFirst, err := c.Parse(first.String())
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(30*time.Minute + 500*time.Millisecond)
	next := c.Next(first, exp)

	tests := []struct {
		name string
		ok   bool
	}{
		{"deterministic", c.Next(first, exp).String() == next.String()},
		{"same from the parsed predecessor", c.Next(parsedFirst, exp).String() == next.String()},
		{"differs from predecessor", next.String() != first.String()},
		{"keeps SessionID", next.SessionID == sid},
		{"keeps Created", next.Created.Equal(first.Created)},
		{"has the new Expires", next.Expires.Equal(exp.Truncate(time.Second)) && next.Expires.Location() == time.UTC},
		{"different predecessors differ", c.Next(sibling, exp).String() != next.String()},
		{"another expiry differs", c.Next(first, exp.Add(time.Minute)).String() != next.String()},
		{"chain does not repeat", c.Next(next, exp).String() != next.String()},
		{"another codec derives another successor", newCodec(t, secretB).Next(first, exp).String() != next.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Error("does not hold")
			}
		})
	}

	t.Run("successor parses", func(t *testing.T) {
		got, err := c.Parse(next.String())
		if err != nil {
			t.Fatalf("Parse(Next) = %v", err)
		}
		if got.SessionID != sid || !got.Created.Equal(t0) || !got.Expires.Equal(exp.Truncate(time.Second)) {
			t.Errorf("Parse(Next) = %+v, want session %s created %v expires %v", got, sid, t0, exp.Truncate(time.Second))
		}
	})
	t.Run("secret is HMAC(next key, session id | predecessor secret)", func(t *testing.T) {
		m := hmac.New(sha256.New, DeriveKey(secretA, "refresh next"))
		m.Write(first.raw[offSID:offCreated])
		m.Write(first.raw[offSecret:offTag])
		if want := m.Sum(nil); !bytes.Equal(next.raw[offSecret:offTag], want) {
			t.Errorf("successor secret = %x, want %x", next.raw[offSecret:offTag], want)
		}
	})
	t.Run("only the codec's secret derives it", func(t *testing.T) {
		if _, err := newCodec(t, secretB).Parse(next.String()); !errors.Is(err, ErrMalformed) {
			t.Errorf("another codec parsed the successor: %v", err)
		}
	})
}

func TestHash(t *testing.T) {
	a, b := newCodec(t, secretA), newCodec(t, secretB)
	r1 := issue(t, a, newSID(t), t0, t0.Add(time.Hour))
	r2 := issue(t, a, r1.SessionID, t0, t0.Add(time.Hour))
	parsed, err := a.Parse(r1.String())
	if err != nil {
		t.Fatal(err)
	}
	h := a.Hash(r1)
	raw := decode(t, r1.String())

	tests := []struct {
		name string
		ok   bool
	}{
		{"32 bytes", len(h) == 32},
		{"deterministic", bytes.Equal(a.Hash(r1), h)},
		{"same for the parsed token", bytes.Equal(a.Hash(parsed), h)},
		{"differs between tokens", !bytes.Equal(a.Hash(r2), h)},
		{"differs from successor", !bytes.Equal(a.Hash(a.Next(r1, t0.Add(2*time.Hour))), h)},
		{"differs between codec secrets", !bytes.Equal(b.Hash(r1), h)},
		{"is not the raw token", !bytes.Equal(h, raw) && !bytes.Contains(raw, h)},
		{"is not the wire token", !bytes.Equal(h, []byte(r1.String()))},
		{"is not the token's secret", !bytes.Equal(h, raw[offSecret:offTag])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Error("does not hold")
			}
		})
	}
}
