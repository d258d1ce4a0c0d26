package reflector

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// lockRealtime binds the calling goroutine to its OS thread and gives that thread the
// SCHED_FIFO policy at priority prio (needs CAP_SYS_NICE), so a packet wakes the reflector
// ahead of ordinary CPU-bound work: on a busy host T3 − T2 is otherwise dominated by the wait
// for a CPU. It pays off with blocking reads (udpsock Options.Blocking), where the kernel
// wakes this very thread. On success the goroutine stays locked: when it ends, the runtime
// discards the thread rather than handing its real-time policy to other goroutines.
func lockRealtime(prio int) error {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: uint32(prio)}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("reflector: SCHED_FIFO priority %d: %w", prio, err)
	}
	return nil
}
