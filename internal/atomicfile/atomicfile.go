// Package atomicfile replaces small files that hold trust decisions
// (known_hosts, known_users) so that a reader or a crash sees the old file
// or the new one, never a mix.
//
// The one rule: the new content reaches the disk before its name does.
package atomicfile

import (
	"os"
	"path/filepath"
)

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
