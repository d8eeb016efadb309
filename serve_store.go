package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/store"
)

// chatDBFile is the chat database in the state directory, beside the host key.
const chatDBFile = "chat.db"

// storeFlags are the serve flags of the chat database.
func storeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "store", Value: "sqlite", Usage: "where the chat state is kept: sqlite (chat.db in the state directory, kept across restarts) or memory (forgotten at exit)", EnvVars: []string{"SECURECHAT_STORE"}},
		&cli.DurationFlag{Name: "history-retention", Usage: "delete stored messages older than this (0: keep)", EnvVars: []string{"SECURECHAT_HISTORY_RETENTION"}},
		&cli.IntFlag{Name: "history-max", Usage: "stored messages kept per room, the newest (0: no limit)", EnvVars: []string{"SECURECHAT_HISTORY_MAX"}},
	}
}

// openChatStore opens the chat database the flags ask for. The caller
// closes it after the hub has stopped. It is also the check serve --check
// makes of the database: it fails, naming the file, on a full disk or a
// database it cannot write.
func openChatStore(c *cli.Context, stateDir string, log *slog.Logger) (*store.Store, error) {
	opts, err := chatStoreOptions(c, log)
	if err != nil {
		return nil, err
	}
	switch c.String("store") {
	case "memory":
		log.Warn("chat state is kept in memory only: a restart forgets it")
		return store.OpenMemory(opts), nil
	case "sqlite":
		path := filepath.Join(stateDir, chatDBFile)
		start := time.Now()
		st, err := store.Open(path, opts)
		if err != nil {
			return nil, withCode(exitError, err, "or run with --store memory to keep the chat state in memory only")
		}
		log.Info("chat database opened", "file", path, "took", time.Since(start).Round(time.Millisecond))
		return st, nil
	}
	return nil, usageError("--store %q: want sqlite or memory", c.String("store"))
}

// checkChatStore is serve --check's look at the chat database: the store
// flags, and the database itself when there is one (opened and closed, so a
// schema newer than this securechat, or a file it cannot write, is the
// error). A missing database is fine: serve creates it.
func checkChatStore(c *cli.Context, stateDir string, log *slog.Logger) (string, error) {
	opts, err := chatStoreOptions(c, log)
	if err != nil {
		return "", err
	}
	if c.String("store") == "memory" {
		return "chat state: in memory only", nil
	}
	path := filepath.Join(stateDir, chatDBFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "chat database " + path + ": none yet; serve will create it", nil
	}
	st, err := store.Open(path, opts)
	if err != nil {
		return "", withCode(exitError, err, "or run with --store memory to keep the chat state in memory only")
	}
	if err := st.Close(); err != nil {
		return "", withCode(exitError, fmt.Errorf("chat database %s: %w", path, err), "")
	}
	return "chat database " + path + ": ok", nil
}

// chatStoreOptions are the store's settings from the serve flags.
func chatStoreOptions(c *cli.Context, log *slog.Logger) (*store.Options, error) {
	if c.Int("history-max") < 0 || c.Duration("history-retention") < 0 {
		return nil, usageError("--history-max and --history-retention must not be negative")
	}
	switch c.String("store") {
	case "sqlite", "memory":
	default:
		return nil, usageError("--store %q: want sqlite or memory", c.String("store"))
	}
	return &store.Options{
		Logger:     log,
		Retention:  c.Duration("history-retention"),
		MaxPerRoom: c.Int("history-max"),
	}, nil
}

// withStore sets the hub's store and the account check that lets direct
// messages wait for an offline account.
func withStore(cfg *chat.Config, st *store.Store, userExists func(string) bool) *chat.Config {
	cfg.Store = chatstore.New(st)
	cfg.UserExists = userExists
	return cfg
}

// deleteStoredUser deletes what the chat database keeps of an account that
// was just deleted: its direct messages, sent and received (deleted, not
// anonymised), its queue, its rooms and read positions. Its room messages
// stay. A state directory without a database has nothing to delete. A
// running server may hold the database: SQLite lets both write, one at a
// time.
func deleteStoredUser(c *cli.Context, name string) error {
	dir, err := stateDir(c)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, chatDBFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	st, err := store.Open(path, nil)
	if err != nil {
		return fmt.Errorf("the account is deleted, but not its direct messages: %w", err)
	}
	if err := st.DeleteUser(name); err != nil {
		st.Close()
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("deleting the direct messages of %s: %w", name, err)
	}
	fmt.Fprintf(c.App.Writer, "securechat: deleted the direct messages of %s from %s\n", name, path)
	return nil
}
