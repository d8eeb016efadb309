package store

import (
	"bufio"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var kills = flag.Int("store.kills", 3, "kill -9 rounds of TestKillNine (the issue's target is 20)")

const killHelperEnv = "SECURECHAT_TEST_STORE_KILL_HELPER"

// TestKillHelperProcess is not a test: re-executed by TestKillNine, it
// appends messages to the database named after "--" as fast as the store
// takes them and prints "ack ID" once each one's callback reported it
// committed, until it is killed.
func TestKillHelperProcess(t *testing.T) {
	if os.Getenv(killHelperEnv) != "1" {
		t.Skip("helper process for TestKillNine")
	}
	args := flag.Args()
	s, err := Open(args[0], nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	round := args[1]
	out := os.Stdout
	id := s.LastID()
	fmt.Fprintf(out, "start %d\n", id)
	for seq := 0; ; seq++ {
		id++
		m := Message{ID: id, Time: time.Now(), Kind: KindMsg, Room: fmt.Sprintf("#r%d", seq%4), From: "load",
			Text: fmt.Sprintf("round %s seq %d", round, seq)}
		if seq%5 == 0 {
			m = Message{ID: id, Time: time.Now(), Kind: KindDM, From: "load", To: "off", Queued: true, Text: m.Text}
		}
		ack := []byte(fmt.Sprintf("ack %d\n", id))
		for {
			err := s.Append(m, func(err error) {
				if err == nil {
					out.Write(ack) // one write per line: a kill never splits an ack we count
				}
			})
			if err == nil {
				break
			}
			time.Sleep(time.Millisecond) // backlog full: let the writer catch up
		}
	}
}

// TestKillNine kills a process that appends under load with SIGKILL at
// random moments, then checks that every message whose commit the process
// had reported is in the database, that none is there twice, and that ids
// go on increasing. Run more rounds with -store.kills=20.
func TestKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 rounds are slow; run without -short")
	}
	path := filepath.Join(t.TempDir(), "chat.db")
	acked := make(map[uint64]bool)
	var lastStart uint64
	for round := range *kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelperProcess$", "--", path, strconv.Itoa(round))
		cmd.Env = append(os.Environ(), killHelperEnv+"=1")
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill at a random moment once the process is appending.
		delay := time.Duration(20+rand.IntN(400)) * time.Millisecond
		deadline := time.After(60 * time.Second)
		var killAt <-chan time.Time
		var roundAcks int
	read:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					break read
				}
				kind, num, _ := strings.Cut(line, " ")
				n, err := strconv.ParseUint(num, 10, 64)
				if err != nil {
					t.Fatalf("helper printed %q", line)
				}
				switch kind {
				case "start":
					if round > 0 && n < lastStart {
						t.Errorf("round %d started at id %d, below the previous start %d", round, n, lastStart)
					}
					for id := range acked {
						if id > n {
							t.Errorf("round %d started at id %d, below acknowledged id %d", round, n, id)
							break
						}
					}
					lastStart = n
					killAt = time.After(delay)
				case "ack":
					if acked[n] {
						t.Errorf("id %d acknowledged twice", n)
					}
					acked[n] = true
					roundAcks++
				}
			case <-killAt:
				cmd.Process.Signal(syscall.SIGKILL)
				killAt = nil
			case <-deadline:
				cmd.Process.Kill()
				t.Fatal("helper never started or never died")
			}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended with %v, not by SIGKILL", round, err)
		}
		t.Logf("round %d: killed after %v, %d acknowledged", round, delay, roundAcks)
		checkKilled(t, path, acked)
	}
	if len(acked) == 0 {
		t.Fatal("no message was ever acknowledged")
	}
	// After the last kill the store opens and goes on above every id.
	s := openT(t, path, nil)
	defer s.Close()
	next := s.LastID() + 1
	for id := range acked {
		if id >= next {
			t.Fatalf("LastID after the kills is %d, below acknowledged %d", next-1, id)
		}
	}
	if errs := appendErrs(t, s, roomMsg(next, "#r0", "x", "after")); errs[0] != nil {
		t.Errorf("append after the kills: %v", errs[0])
	}
}

// checkKilled reads the database as it was left by a killed process.
func checkKilled(t *testing.T, path string, acked map[uint64]bool) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, body FROM messages ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := make(map[uint64]bool)
	texts := make(map[string]uint64)
	for rows.Next() {
		var id uint64
		var text string
		if err := rows.Scan(&id, &text); err != nil {
			t.Fatal(err)
		}
		if other, dup := texts[text]; dup {
			t.Errorf("message %q stored twice, as %d and %d", text, other, id)
		}
		texts[text] = id
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	missing := 0
	for id := range acked {
		if !have[id] {
			missing++
			if missing <= 5 {
				t.Errorf("acknowledged message %d is not in the database", id)
			}
		}
	}
	if missing > 5 {
		t.Errorf("... and %d more acknowledged messages are missing", missing-5)
	}
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
}
