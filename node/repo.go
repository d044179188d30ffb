package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrRepoLocked is returned by New when another daemon holds the repo's lock.
var ErrRepoLocked = errors.New("repo is locked by another daemon")

// repoLock is a held flock on the repo's lock file.
type repoLock struct{ f *os.File }

// lockRepo takes an exclusive, non-blocking flock on repoDir/repo.lock and
// writes our pid into it. The kernel drops the lock if the process dies, so
// a crashed daemon never leaves a stale lock.
func lockRepo(repoDir string) (*repoLock, error) {
	path := filepath.Join(repoDir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := strings.TrimSpace(string(b))
			return nil, fmt.Errorf("%w: %s (pid %s)", ErrRepoLocked, repoDir, pid)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &repoLock{f: f}, nil
}

// release drops the lock (the file stays; its content is stale once
// unlocked and is ignored).
func (l *repoLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
