package netlab

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has entered the host's network namespace, so Go code can
// open sockets there without a child process: a socket keeps the namespace it was created in,
// so it may be used from any goroutine after Do returns. Goroutines fn starts run in the
// caller's namespace, not the host's.
func (h *Host) Do(fn func() error) error {
	target, err := os.Open("/run/netns/" + h.NS)
	if err != nil {
		return fmt.Errorf("netlab %s: open namespace: %w", h.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab %s: open own namespace: %w", h.Name, err)
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netlab %s: setns: %w", h.Name, err)
			return
		}
		ferr := fn()
		// A thread we cannot move back stays locked, so the runtime retires it with the goroutine.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
