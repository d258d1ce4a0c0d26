package loadgen

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PinTasks sets the CPU affinity of every thread of process pid (0: this process) to cpus.
// Threads started later inherit the mask from the thread that creates them. On a 2-CPU
// machine pinning the load generator to one CPU and the target to the other keeps the
// residence run from measuring the two competing for a CPU instead of the target.
func PinTasks(pid int, cpus ...int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	// Two passes: a thread created while the first pass ran inherits either mask.
	for pass := 0; pass < 2; pass++ {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("loadgen: pin %d: %w", pid, err)
		}
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
				return fmt.Errorf("loadgen: pin thread %d of %d to CPUs %v: %w", tid, pid, cpus, err)
			}
		}
	}
	return nil
}

// Affinity returns the CPUs thread tid (0: the calling thread) may run on.
func Affinity(tid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
