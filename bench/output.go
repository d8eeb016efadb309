package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"
)

// Output is what every scenario does around its run: more file
// descriptors, a description of the machine, a CPU profile if asked for, a
// progress line, and at the end the report, as text or JSON, and a heap
// profile if asked for.
type Output struct {
	Stdout, Stderr io.Writer
	StderrIsTTY    bool // the progress line is rewritten in place
	JSON           bool
	Quiet          bool   // no progress line
	CPUProfile     string // file names; "" for none
	MemProfile     string

	// Progress is the progress line for the scenario's config; nil when
	// Quiet.
	Progress func(string)

	machine Machine
	stopCPU func()
}

// Start prepares the run. A failure to raise the file limit is only
// warned about on Stderr.
func (o *Output) Start() error {
	limit, err := RaiseFileLimit()
	if err != nil {
		fmt.Fprintf(o.Stderr, "securechat: warning: %v\n", err)
	}
	o.machine = DescribeMachine(limit)
	o.stopCPU = func() {}
	if !o.Quiet {
		o.Progress = progressLine(o.Stderr, o.StderrIsTTY)
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("cpu profile: %w", err)
		}
		o.stopCPU = func() { pprof.StopCPUProfile(); f.Close() }
	}
	return nil
}

// Stop ends the CPU profile of a run that failed before its report.
func (o *Output) Stop() { o.stopCPU() }

// Finish stops the profiles and writes the report.
func (o *Output) Finish(scenario string, report interface{ WriteText(io.Writer) }) error {
	o.stopCPU()
	if o.MemProfile != "" {
		f, err := os.Create(o.MemProfile)
		if err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
		pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if o.JSON {
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Scenario string  `json:"scenario"`
			Machine  Machine `json:"machine"`
			Report   any     `json:"report"`
		}{scenario, o.machine, report})
	}
	o.machine.WriteText(o.Stdout)
	report.WriteText(o.Stdout)
	return nil
}

// progressLine rewrites one line on a terminal; elsewhere it prints a line
// every five seconds at most.
func progressLine(w io.Writer, tty bool) func(string) {
	var last time.Time
	return func(line string) {
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
			return
		}
		if line == "" || time.Since(last) < 5*time.Second {
			return
		}
		last = time.Now()
		fmt.Fprintln(w, line)
	}
}

// Err is the handshake run's verdict: an error if a row had errors or
// no handshake at all.
func (r *HandshakeReport) Err() error {
	for _, row := range r.Rows {
		if row.Errors > 0 || row.Count == 0 {
			return fmt.Errorf("bench: %s: %d errors, %d handshakes", row.Name, row.Errors, row.Count)
		}
	}
	return nil
}

// Err is the fan-out run's verdict: an error if a client could not
// connect, a session ended, or a delivery was lost.
func (r *FanoutReport) Err() error {
	switch {
	case r.ConnectErrors > 0:
		return fmt.Errorf("bench: %d clients could not connect", r.ConnectErrors)
	case r.Disconnects > 0:
		return fmt.Errorf("bench: %d sessions ended during the run", r.Disconnects)
	case r.Lost != 0:
		return fmt.Errorf("bench: %d deliveries lost", r.Lost)
	case r.Signed && r.VerifyFailed > 0:
		return fmt.Errorf("bench: %d signed messages did not verify", r.VerifyFailed)
	case r.Signed && r.Verified == 0:
		return errors.New("bench: no signed message was verified")
	}
	return nil
}

// Err is the idle run's verdict.
func (r *IdleReport) Err() error {
	if r.ConnectErrors > 0 || r.Disconnects > 0 {
		return fmt.Errorf("bench: %d clients could not connect, %d were disconnected", r.ConnectErrors, r.Disconnects)
	}
	return nil
}

// Err is the targets run's verdict: an error if a target was missed or a
// scenario failed.
func (r *TargetsReport) Err() error { return verdict("targets", r.Targets, r.Errors) }

// verdict is an error naming how many of targets (what they are called)
// were missed and how many scenarios failed, or nil when none.
func verdict(what string, targets []TargetResult, errs []string) error {
	missed := 0
	for _, t := range targets {
		if !t.Met {
			missed++
		}
	}
	if missed > 0 || len(errs) > 0 {
		return fmt.Errorf("bench: %d of %d %s missed, %d scenario errors", missed, len(targets), what, len(errs))
	}
	return nil
}
