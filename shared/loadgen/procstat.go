package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ClockTick is the unit of utime/stime in /proc/PID/stat: USER_HZ, which Linux fixes at 100
// for every architecture's user-visible interfaces (sysconf(_SC_CLK_TCK)).
const ClockTick = 10 * time.Millisecond

// ErrProcStat is returned for a /proc/PID/stat line that does not have the expected shape.
var ErrProcStat = errors.New("loadgen: malformed /proc stat line")

// ParseProcStat returns utime and stime (fields 14 and 15, in clock ticks) of a
// /proc/PID/stat line. The command name (field 2) is parenthesised and may itself contain
// spaces and parentheses, so fields are counted after its last ')'.
func ParseProcStat(b []byte) (utime, stime uint64, err error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return 0, 0, fmt.Errorf("%w: no (comm)", ErrProcStat)
	}
	rest := bytes.Fields(b[end+1:])
	// rest[0] is field 3 (state); utime is field 14 → rest[11], stime field 15 → rest[12].
	if len(rest) < 13 {
		return 0, 0, fmt.Errorf("%w: %d fields after comm, want ≥ 13", ErrProcStat, len(rest))
	}
	if utime, err = strconv.ParseUint(string(rest[11]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: utime: %v", ErrProcStat, err)
	}
	if stime, err = strconv.ParseUint(string(rest[12]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%w: stime: %v", ErrProcStat, err)
	}
	return utime, stime, nil
}

// ProcCPU returns the CPU time (user + system, all threads, including exited ones) that
// process pid has used so far, from /proc/PID/stat, with ClockTick resolution.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("loadgen: cpu of pid %d: %w", pid, err)
	}
	u, s, err := ParseProcStat(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return time.Duration(u+s) * ClockTick, nil
}
