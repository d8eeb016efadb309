package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE of this process (and so of
// the child servers it starts) to the hard limit, since every client of a
// run holds a socket. It returns the soft limit now in force.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, fmt.Errorf("bench: setrlimit: %w", err)
		}
		lim = want
	}
	return lim.Cur, nil
}

// ProcessRSS returns the resident set size of process pid in bytes
// (VmRSS of /proc/PID/status); pid 0 means this process.
func ProcessRSS(pid int) (int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: rss: %w", err)
	}
	return parseVmRSS(b)
}

// parseVmRSS finds the "VmRSS:   1234 kB" line of a /proc status file.
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("bench: rss: malformed line %q", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("bench: rss: malformed line %q", line)
		}
		return kb << 10, nil
	}
	return 0, errors.New("bench: rss: no VmRSS line")
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcessCPU returns the user plus system CPU time process pid has used
// (utime and stime of /proc/PID/stat); pid 0 means this process.
func ProcessCPU(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time: %w", err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 and 15 of a /proc stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from the last ")".
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bench: cpu time: malformed stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, errors.New("bench: cpu time: malformed stat")
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, errors.New("bench: cpu time: malformed stat")
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// Machine describes where a run took place, so that figures from two runs
// are only compared knowingly.
type Machine struct {
	CPUs       int       `json:"cpus"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	CPUModel   string    `json:"cpu_model"`
	GoVersion  string    `json:"go_version"`
	OS         string    `json:"os"`
	LoadAvg    []float64 `json:"load_avg"` // 1, 5 and 15 minutes, at the start
	FDLimit    uint64    `json:"fd_limit"`
}

// DescribeMachine fills in a Machine. Fields it cannot read stay empty.
func DescribeMachine(fdLimit uint64) Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS + "/" + runtime.GOARCH,
		FDLimit:    fdLimit,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	m.LoadAvg, _ = LoadAverage()
	return m
}

// LoadAverage returns the 1, 5 and 15 minute load averages.
func LoadAverage() ([]float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil, fmt.Errorf("bench: load average: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return nil, errors.New("bench: load average: malformed /proc/loadavg")
	}
	out := make([]float64, 3)
	for i := range out {
		if out[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return nil, fmt.Errorf("bench: load average: %w", err)
		}
	}
	return out, nil
}
