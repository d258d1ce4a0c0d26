package loadgen

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		name        string
		line        string
		utime, stim uint64
		err         bool
	}{
		// A real line from this machine (bash), and the same with hostile command names.
		{"bash", "1234 (bash) S 1 1234 1234 34816 1234 4194560 1092 0 0 0 17 9 0 0 20 0 1 0 2480 9109504 944 18446744073709551615 1 1 0 0 0 0 65536 3686404 1266761467 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", 17, 9, false},
		{"spaces and parens in comm", "77 (a) b (c)) R 1 77 77 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 3 0 100 0 0 0", 250, 31, false},
		{"empty comm", "5 () S 1 5 5 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 1 0 0", 1, 2, false},
		{"large counters", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 18446744073709551615 0 0 0 20 0 1 0 1 0 0", 18446744073709551615, 0, false},
		{"too few fields", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 4", 0, 0, true},
		{"no comm", "9 x S 1 9 9 0 -1 0 0 0 0 0 1 2 3", 0, 0, true},
		{"reversed parens", "9 )x( S 1 9 9 0 -1 0 0 0 0 0 1 2 3", 0, 0, true},
		{"non-numeric utime", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 u 2 0 0 20", 0, 0, true},
		{"negative stime", "9 (x) S 1 9 9 0 -1 0 0 0 0 0 1 -2 0 0 20", 0, 0, true},
		{"empty", "", 0, 0, true},
	} {
		u, s, err := ParseProcStat([]byte(tc.line))
		if (err != nil) != tc.err {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.err)
			continue
		}
		if err != nil && !errors.Is(err, ErrProcStat) {
			t.Errorf("%s: %v does not wrap ErrProcStat", tc.name, err)
		}
		if u != tc.utime || s != tc.stim {
			t.Errorf("%s: utime %d stime %d, want %d %d", tc.name, u, s, tc.utime, tc.stim)
		}
	}
}

func rusageCPU(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestProcCPUTracksBurn(t *testing.T) {
	// getrusage is the independent reading of the same kernel accounting: burn ≥ 200 ms of
	// CPU by its measure and /proc/self/stat must agree to within a few clock ticks.
	before, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r0 := rusageCPU(t)
	x := 0
	for rusageCPU(t)-r0 < 200*time.Millisecond {
		for i := 0; i < 100000; i++ {
			x += i ^ x
		}
	}
	after, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r1 := rusageCPU(t)
	used, want := after-before, r1-r0
	if d := used - want; d < -3*ClockTick || d > 3*ClockTick {
		t.Errorf("/proc stat says %v, getrusage %v (x=%d)", used, want, x)
	}
	if _, err := ProcCPU(1 << 30); err == nil {
		t.Error("no error for a missing pid")
	}
}

func FuzzParseProcStat(f *testing.F) {
	if b, err := os.ReadFile("testdata/proc_stat_bash"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("77 (a) b (c)) R 1 77 77 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 3 0 100 0 0 0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, s, err := ParseProcStat(b)
		if err != nil && (u != 0 || s != 0) {
			t.Fatalf("error %v with values %d %d", err, u, s)
		}
	})
}

func TestPinTasks(t *testing.T) {
	cpus, err := Affinity(0)
	if err != nil || len(cpus) == 0 {
		t.Fatalf("affinity: %v %v", cpus, err)
	}
	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	last := cpus[len(cpus)-1]
	if err := PinTasks(cmd.Process.Pid, last); err != nil {
		t.Fatal(err)
	}
	got, err := Affinity(cmd.Process.Pid)
	if err != nil || len(got) != 1 || got[0] != last {
		t.Errorf("pinned to %d: affinity %v, %v", last, got, err)
	}
	if err := PinTasks(1<<30, last); err == nil {
		t.Error("pinning a missing process succeeded")
	}
}
