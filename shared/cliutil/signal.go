package cliutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// SignalError is the cancellation cause of a SignalContext: which signal stopped the run.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return fmt.Sprintf("interrupted by %v", e.Signal) }

// ExitCode is the shell convention 128+signal number.
func (e *SignalError) ExitCode() int {
	if s, ok := e.Signal.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return ExitFailure
}

// SignalContext returns a context cancelled by the first SIGINT or SIGTERM, so the tool can stop
// sending, wait for outstanding replies and print complete results; context.Cause(ctx) is a
// *SignalError. A second signal exits the process at once with 128+signal. cancel releases
// the signal handler.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signalContext(parent, os.Stderr, os.Exit)
}

func signalContext(parent context.Context, stderr io.Writer, exit func(int)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		first := true
		for {
			select {
			case s := <-ch:
				se := &SignalError{Signal: s}
				if !first {
					fmt.Fprintf(stderr, "%v again: exiting without waiting\n", s)
					exit(se.ExitCode())
					return
				}
				first = false
				cancel(se)
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(ch)
			close(done)
			cancel(context.Canceled)
		})
	}
}

// Interrupted reports whether ctx was cancelled by a signal, and which.
func Interrupted(ctx context.Context) (*SignalError, bool) {
	var se *SignalError
	if errors.As(context.Cause(ctx), &se) {
		return se, true
	}
	return nil, false
}
