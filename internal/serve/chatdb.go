package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"securechat/chat"
	"securechat/chatstore"
	"securechat/internal/cmderr"
	"securechat/store"
)

// openChatStore opens the chat database the flags ask for. The caller
// closes it after the hub has stopped. It is also the check serve --check
// makes of the database: it fails, naming the file, on a full disk or a
// database it cannot write.
func openChatStore(cfg Config, stateDir string, log *slog.Logger) (*store.Store, error) {
	opts, err := cfg.chatStoreOptions(log)
	if err != nil {
		return nil, err
	}
	switch cfg.Store {
	case "memory":
		log.Warn("chat state is kept in memory only: a restart forgets it")
		return store.OpenMemory(opts), nil
	case "sqlite":
		path := filepath.Join(stateDir, store.FileName)
		start := time.Now()
		st, err := store.Open(path, opts)
		if err != nil {
			return nil, cmderr.WithHint(err, "or run with --store memory to keep the chat state in memory only")
		}
		log.Info("chat database opened", "file", path, "took", time.Since(start).Round(time.Millisecond))
		return st, nil
	}
	return nil, cmderr.Usagef("--store %q: want sqlite or memory", cfg.Store)
}

// checkChatStore is serve --check's look at the chat database: the store
// flags, and the database itself when there is one (opened and closed, so a
// schema newer than this securechat, or a file it cannot write, is the
// error). A missing database is fine: serve creates it.
func checkChatStore(cfg Config, stateDir string, log *slog.Logger) (string, error) {
	opts, err := cfg.chatStoreOptions(log)
	if err != nil {
		return "", err
	}
	if cfg.Store == "memory" {
		return "chat state: in memory only", nil
	}
	path := filepath.Join(stateDir, store.FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "chat database " + path + ": none yet; serve will create it", nil
	}
	st, err := store.Open(path, opts)
	if err != nil {
		return "", cmderr.WithHint(err, "or run with --store memory to keep the chat state in memory only")
	}
	if err := st.Close(); err != nil {
		return "", fmt.Errorf("chat database %s: %w", path, err)
	}
	return "chat database " + path + ": ok", nil
}

// chatStoreOptions are the store's settings.
func (cfg Config) chatStoreOptions(log *slog.Logger) (*store.Options, error) {
	if cfg.HistoryMax < 0 || cfg.HistoryRetained < 0 {
		return nil, cmderr.Usagef("--history-max and --history-retention must not be negative")
	}
	switch cfg.Store {
	case "sqlite", "memory":
	default:
		return nil, cmderr.Usagef("--store %q: want sqlite or memory", cfg.Store)
	}
	return &store.Options{
		Logger:     log,
		Retention:  cfg.HistoryRetained,
		MaxPerRoom: cfg.HistoryMax,
	}, nil
}

// withStore sets the hub's store and the account check that lets direct
// messages wait for an offline account.
func withStore(cfg *chat.Config, st *store.Store, userExists func(string) bool) *chat.Config {
	cfg.Store = chatstore.New(st)
	cfg.UserExists = userExists
	return cfg
}
