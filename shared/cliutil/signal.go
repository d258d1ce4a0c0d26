package cliutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
// *SignalError. A second signal exits the process with 128+signal without waiting for the
// tool, but after the line being written to the output (OutputWriter) is complete, so a
// second Ctrl-C never leaves half a JSON line. cancel releases the signal handler.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signalContext(parent, os.Stderr, os.Exit)
}

// Writes through OutputWriter count themselves in flight; a second signal's exit first stops
// new writes (exiting) and then waits for the ones in flight. Counting instead of a mutex
// keeps nested OutputWriters (e.g. an Emitter over an io.MultiWriter of the app's Writer)
// free of deadlocks.
var (
	inflight atomic.Int64
	exiting  atomic.Bool
)

// exitWait bounds how long a second signal waits for an in-flight write (a reader that
// stopped reading a full pipe must not keep the process alive).
const exitWait = 2 * time.Second

// OutputWriter wraps w so that each Write completes before a second signal's exit. Main wraps
// the app's Writer with it unless that is a terminal (tools check c.App.Writer for an *os.File
// on a terminal before starting a TUI); every Emitter writes through it. Write whole lines
// per call: the Emitter does.
func OutputWriter(w io.Writer) io.Writer {
	if _, ok := w.(*outputWriter); ok {
		return w
	}
	return &outputWriter{w: w}
}

type outputWriter struct{ w io.Writer }

func (o *outputWriter) Write(b []byte) (int, error) {
	for {
		inflight.Add(1)
		if !exiting.Load() {
			break
		}
		// The process is exiting: this write must not start (it could be cut short).
		inflight.Add(-1)
		time.Sleep(time.Millisecond)
	}
	defer inflight.Add(-1)
	return o.w.Write(b)
}

// holdOutput stops new writes (the process is about to exit) and waits at most d for those in
// flight; release lets writes go on (only reached when exit did not exit: tests).
func holdOutput(d time.Duration) (release func()) {
	exiting.Store(true)
	deadline := time.Now().Add(d)
	for inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return func() { exiting.Store(false) }
}

// forced holds the cleanups a second signal runs before it ends the process.
var forced struct {
	sync.Mutex
	next int
	fns  map[int]func()
}

// OnForcedExit registers fn to run when a second signal ends the process at once: for state
// outside the process that must not be left behind (an nft table installed for the run), which
// the normal way out (Close after the first signal) would have removed. fn must be quick and
// safe to run concurrently with that normal cleanup; all of them together get a bounded wait.
// remove unregisters fn once the normal cleanup has run.
func OnForcedExit(fn func()) (remove func()) {
	forced.Lock()
	defer forced.Unlock()
	if forced.fns == nil {
		forced.fns = map[int]func(){}
	}
	id := forced.next
	forced.next++
	forced.fns[id] = fn
	return func() {
		forced.Lock()
		delete(forced.fns, id)
		forced.Unlock()
	}
}

// runForcedExit runs the registered cleanups concurrently and waits for them at most d.
func runForcedExit(d time.Duration) {
	forced.Lock()
	fns := make([]func(), 0, len(forced.fns))
	for _, fn := range forced.fns {
		fns = append(fns, fn)
	}
	forced.Unlock()
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
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
					runForcedExit(exitWait)
					release := holdOutput(exitWait)
					fmt.Fprintf(stderr, "%v again: exiting without waiting\n", s)
					exit(se.ExitCode())
					release()
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

// runState is what Run keeps per run in the action's context (see MarkComplete).
type runState struct{ complete atomic.Bool }

type runStateKey struct{}

// MarkComplete tells Main that the run has results worth reporting as a finished run: a
// SIGINT or SIGTERM that stops it afterwards exits as the run would have without the signal
// (0, or 1 when the action returns an error other than the cancellation), as ping does after
// replies came back. Call it with the action's context (c.Context or one derived from it),
// e.g. when a sender's first reply arrives. Without it, a run stopped by a signal exits 130
// (SIGINT) or 143 (SIGTERM). Daemons (SetDaemon) need not call it: a signal is their normal
// end. Safe for concurrent use; a no-op on a context that Run did not create.
func MarkComplete(ctx context.Context) {
	if st, ok := ctx.Value(runStateKey{}).(*runState); ok {
		st.complete.Store(true)
	}
}

// Completed reports whether MarkComplete was called for ctx's run.
func Completed(ctx context.Context) bool {
	st, ok := ctx.Value(runStateKey{}).(*runState)
	return ok && st.complete.Load()
}
