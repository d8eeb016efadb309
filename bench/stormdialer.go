package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"

	"securechat/handshake"
	"securechat/transport"
)

// StormDialerConfig is what a storm dialer process needs: the server, and
// the storm's sizes. RunStorm hands it to the process as one JSON line.
type StormDialerConfig struct {
	Transport      string            `json:"transport"`
	Addr           string            `json:"addr"`
	Fingerprint    string            `json:"fingerprint"`
	Groups         []handshake.Group `json:"groups,omitempty"`
	Victims        []string          `json:"victims"`
	Sources        int               `json:"sources"`
	Rate           float64           `json:"rate"`
	WrongPasswords int               `json:"wrong_passwords"`
	MaxInFlight    int               `json:"max_in_flight"`
}

// RunStormDialer is the storm dialer process's side: it reads a
// StormDialerConfig line from in, runs the password storm against that
// server until in ends (the parent closes it) or ctx is done, and then
// writes the storm's StormLoad to out as one JSON line.
//
// The storm runs in a process of its own because the fan-out's receivers
// time the deliveries: sharing a Go scheduler with 2,900 connection
// goroutines a second, they are delayed by the storm's goroutines rather
// than by the server, which is what the scenario measures. An attacker's
// connections never run inside the clients it attacks. The dialer still
// runs on the same host and cores.
func RunStormDialer(ctx context.Context, in io.Reader, out io.Writer) error {
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bench: storm dialer: reading its configuration: %w", err)
	}
	var dc StormDialerConfig
	if err := json.Unmarshal(line, &dc); err != nil {
		return fmt.Errorf("bench: storm dialer: bad configuration: %w", err)
	}
	tr, err := transport.Lookup(dc.Transport)
	if err != nil {
		return fmt.Errorf("bench: storm dialer: %w", err)
	}
	switch {
	case dc.Sources < 1 || dc.Sources > MaxStormSources, dc.Rate <= 0 || dc.Rate > MaxStormRate,
		dc.WrongPasswords < 1 || dc.WrongPasswords > maxStormTries, dc.MaxInFlight < 1, len(dc.Victims) == 0:
		return errors.New("bench: storm dialer: configuration out of bounds")
	}
	t := &Target{Transport: tr, Addr: dc.Addr, Fingerprint: dc.Fingerprint, Groups: dc.Groups}
	cfg := StormConfig{Sources: dc.Sources, Rate: dc.Rate, WrongPasswords: dc.WrongPasswords, MaxInFlight: dc.MaxInFlight}
	stop, err := startStorm(ctx, t, cfg, dc.Victims, func(string) {})
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(ended)
	}()
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return json.NewEncoder(out).Encode(stop())
}

// startStormProcess runs the storm in a child, command, that calls
// RunStormDialer. The returned function ends the storm and returns what
// the child reports.
func startStormProcess(ctx context.Context, command []string, t *Target, cfg StormConfig, victims []string, stderr io.Writer) (func() (*StormLoad, error), error) {
	line, err := json.Marshal(StormDialerConfig{
		Transport: t.Transport.Name(), Addr: t.Addr, Fingerprint: t.Fingerprint, Groups: t.Groups,
		Victims: victims, Sources: cfg.Sources, Rate: cfg.Rate, WrongPasswords: cfg.WrongPasswords, MaxInFlight: cfg.MaxInFlight,
	})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting the storm dialer: %w", err)
	}
	if _, err := stdin.Write(append(line, '\n')); err != nil {
		stdin.Close()
		cmd.Wait()
		return nil, fmt.Errorf("bench: configuring the storm dialer: %w", err)
	}
	pid, begin := cmd.Process.Pid, time.Now()
	cpu0, cpuErr := ProcessCPU(pid)
	var once sync.Once
	var load *StormLoad
	var result error
	return func() (*StormLoad, error) {
		once.Do(func() {
			// The dialer's CPU, to the end of the storm: what the attack
			// took from the cores the server shares.
			var cores float64
			if cpu1, err := ProcessCPU(pid); err == nil && cpuErr == nil {
				cores = (cpu1 - cpu0).Seconds() / time.Since(begin).Seconds()
			}
			stdin.Close()
			// The report is the last line that is a JSON object: a
			// dialer run through a test binary may print other lines.
			var l StormLoad
			derr := errors.New("no report")
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if b := sc.Bytes(); len(b) > 0 && b[0] == '{' {
					derr = json.Unmarshal(b, &l)
				}
			}
			werr := cmd.Wait()
			switch {
			case derr != nil:
				result = fmt.Errorf("bench: storm dialer's report: %w (exit: %v)", derr, werr)
			case werr != nil:
				result = fmt.Errorf("bench: storm dialer: %w", werr)
			default:
				l.DialerCPUCores = cores
				load = &l
			}
		})
		return load, result
	}, nil
}
