package static

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshauth/meshauth/internal/login"
)

var (
	_ login.Service        = (*Watched)(nil)
	_ login.IdentityMapper = (*Watched)(nil)
)

// ReloadInterval is the least time between two looks at a watched users
// file.
const ReloadInterval = time.Second

// Watched is the provider of a users file that may change while the
// service runs (meshauth users add, an editor, a deployment). At a login,
// at most once per ReloadInterval, it looks at the file (one stat); when
// the file is another one, or its size or modification time changed, it
// reads it again. A file that cannot be read or holds invalid users keeps
// the users it had, and is reported once to the log, naming the file and
// the kind of problem but nothing the file holds (emails, hashes).
type Watched struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	cur atomic.Pointer[Provider]

	mu        sync.Mutex // held by the one login that looks at the file
	nextLook  time.Time
	stamp     fs.FileInfo // the file cur was read from
	lastFault fs.FileInfo // the change last reported as unusable; nil after success
	faulty    bool        // the last look found a problem (reported once)
}

// Watch reads the users file at path, as Load does, and returns a provider
// that reads it again when it changes. log receives the warnings of failed
// reloads; now is the clock (time.Now when nil).
func Watch(path string, log *slog.Logger, now func() time.Time) (*Watched, error) {
	if now == nil {
		now = time.Now
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	p, err := Load(path)
	if err != nil {
		return nil, err
	}
	w := &Watched{path: path, log: log, now: now, stamp: info, nextLook: now().Add(ReloadInterval)}
	w.cur.Store(p)
	return w, nil
}

// Login implements login.Service with the users the file holds now.
func (w *Watched) Login(ctx context.Context, email, password string) (login.Identity, error) {
	return w.current(ctx).Login(ctx, email, password)
}

// MapIdentity implements login.IdentityMapper with the users the file holds now.
func (w *Watched) MapIdentity(ctx context.Context, ext login.External) (login.Identity, error) {
	return w.current(ctx).MapIdentity(ctx, ext)
}

// current returns the provider of the file as it is, reading the file again
// when it is due and changed. Logins that arrive while one of them reads
// the file use the users read before.
func (w *Watched) current(ctx context.Context) *Provider {
	if !w.mu.TryLock() {
		return w.cur.Load()
	}
	defer w.mu.Unlock()
	now := w.now()
	if now.Before(w.nextLook) {
		return w.cur.Load()
	}
	w.nextLook = now.Add(ReloadInterval)
	info, err := os.Stat(w.path)
	if err != nil {
		w.fault(ctx, nil, problem(err))
		return w.cur.Load()
	}
	if sameFile(info, w.stamp) || (w.faulty && sameFile(info, w.lastFault)) {
		return w.cur.Load()
	}
	p, err := Load(w.path)
	if err != nil {
		w.fault(ctx, info, problem(err))
		return w.cur.Load()
	}
	w.cur.Store(p)
	w.stamp, w.lastFault, w.faulty = info, nil, false
	if w.log != nil {
		w.log.LogAttrs(ctx, slog.LevelInfo, "users file read again", slog.String("file", w.path), slog.Int("users", len(p.users)))
	}
	return p
}

// fault reports a file that cannot be used, once per change of the file
// (info nil: the file cannot even be looked at).
func (w *Watched) fault(ctx context.Context, info fs.FileInfo, reason string) {
	if w.faulty && (info == nil && w.lastFault == nil || sameFile(info, w.lastFault)) {
		return
	}
	w.faulty, w.lastFault = true, info
	if w.log != nil {
		w.log.LogAttrs(ctx, slog.LevelWarn, "users file changed but cannot be used; keeping the users read before",
			slog.String("file", w.path), slog.String("problem", reason))
	}
}

// sameFile reports whether a and b describe the same file, unchanged: the
// same inode (a rename over the path makes another), size and time.
func sameFile(a, b fs.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// problem says what is wrong with a users file without quoting it: JSON
// errors may show a piece of the file, user errors name an email.
func problem(err error) string {
	var pathErr *fs.PathError
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &pathErr):
		return pathErr.Op + ": " + pathErr.Err.Error()
	case errors.As(err, &syntax):
		return "not valid JSON (at byte " + strconv.FormatInt(syntax.Offset, 10) + ")"
	case errors.As(err, &typeErr):
		return "a value of the wrong JSON type (field " + typeErr.Field + ")"
	case errors.Is(err, errInvalidUsers):
		return "invalid users (an empty email or customer id, an email listed twice, or a password hash that is not argon2id or bcrypt): meshauth refuses to start with this file"
	}
	return "unreadable"
}
