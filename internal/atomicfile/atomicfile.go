// Package atomicfile replaces small files that hold trust decisions
// (known_hosts, known_users) so that a reader or a crash sees the old file
// or the new one, never a mix.
//
// The one rule: the new content reaches the disk before its name does.
// Writers that append to such a file and writers that replace it hold
// [Lock] while they do, so an append never goes to a file about to be
// renamed over.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Lock takes an exclusive advisory lock for path: flock on path+".lock",
// a file that is never removed (removing it would let two writers lock two
// different files). It waits for a lock another process holds. unlock
// releases it.
func Lock(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(lf.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, err
	}
	return func() { lf.Close() }, nil
}

// Replace writes data to path with mode 0600: a temporary file beside it,
// fsync, rename over path, fsync of the directory. On error path is left
// as it was and the temporary file is removed.
func Replace(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
