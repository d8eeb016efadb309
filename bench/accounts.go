package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"securechat/credstore"
)

// BenchParams is the Argon2id cost of benchmark accounts: 64 KiB, one pass,
// one lane, a few microseconds per login. It is far below
// credstore.MinParams on purpose, so that a connect storm measures the
// channel and the server rather than password hashing, and it must never
// protect a real password.
var BenchParams = credstore.Params{Memory: 64, Time: 1, Threads: 1}

// MaxAccounts bounds one provisioning run.
const MaxAccounts = 1_000_000

// AccountName is the name of benchmark account i under prefix.
func AccountName(prefix string, i int) string { return prefix + strconv.Itoa(i) }

// provisionHeader labels a creds file written by Provision.
const provisionHeader = `# securechat benchmark accounts, written by "securechat bench provision".
# They share one password and are hashed with Argon2id %s. A cost far
# below the defaults lets load tests measure the server rather than hashing.
# For load tests only: never let a production server load this file.
`

// Provision writes a new creds file at path holding n accounts named
// prefix0 … prefix(n-1), all with password, hashed at p. It refuses a file
// that exists already, so benchmark accounts never end up beside real ones.
// The file is created with mode 0600 and labelled as benchmark-only.
func Provision(path, prefix string, n int, password []byte, p credstore.Params) error {
	if n < 1 || n > MaxAccounts {
		return fmt.Errorf("bench: provision: %d accounts; want 1 to %d", n, MaxAccounts)
	}
	for _, i := range []int{0, n - 1} {
		if err := credstore.CheckName(AccountName(prefix, i)); err != nil {
			return fmt.Errorf("bench: provision: prefix %q: %w", prefix, err)
		}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = AccountName(prefix, i)
	}
	return provision(path, password, accountGroup{names, p})
}

// accountGroup is a set of accounts hashed at one cost.
type accountGroup struct {
	names  []string
	params credstore.Params
}

// provision writes a new creds file of every group's accounts, all with
// password; see Provision.
func provision(path string, password []byte, groups ...accountGroup) error {
	if len(password) == 0 {
		return errors.New("bench: provision: empty password")
	}
	type job struct {
		name string
		p    credstore.Params
	}
	var jobs []job
	var costs []string
	for _, g := range groups {
		if err := g.params.Check(credstore.MaxParams); err != nil {
			return fmt.Errorf("bench: provision: %w", err)
		}
		for _, n := range g.names {
			if err := credstore.CheckName(n); err != nil {
				return fmt.Errorf("bench: provision: %w", err)
			}
			jobs = append(jobs, job{n, g.params})
		}
		costs = append(costs, g.params.String())
	}
	lines := make([]string, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(jobs); i += workers {
				a, err := credstore.NewAccount(jobs[i].name, credstore.RoleUser, password, jobs[i].p)
				if err != nil {
					errs[i] = err
					continue
				}
				lines[i] = a.String()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bench: provision: %w", err)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, provisionHeader, strings.Join(costs, " and "))
	for _, l := range lines {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("bench: provision: %w", err)
	}
	_, werr := f.WriteString(sb.String())
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		// Parse what was written, so that a file the server would refuse
		// is never left behind.
		_, werr = credstore.ReadFile(path)
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("bench: provision: %w", werr)
	}
	return nil
}

// RandomPassword returns a fresh password for accounts that live only as
// long as one run.
func RandomPassword() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return []byte(hex.EncodeToString(b))
}
