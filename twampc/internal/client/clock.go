package client

import (
	"time"

	"github.com/probekit/probekit/shared/timestamp"
	"golang.org/x/sys/unix"
)

// staUnsync is STA_UNSYNC of <linux/timex.h>: the kernel clock is not synchronised.
const staUnsync = 0x0040

// unsyncedEE is the Error Estimate of timestamps from a clock the kernel does not report as
// synchronised (S=0): 1 ms, a loose bound for an undisciplined clock over a short test.
var unsyncedEE = timestamp.NewErrorEstimate(false, false, time.Millisecond)

// clockEE returns the Error Estimate of this host's timestamps as owamp's _OWPGetTimespec
// derives it (perfsonar/owamp owamp/time.c): S set unless the kernel clock status has
// STA_UNSYNC, and then the kernel's estimated error (timex.esterror, µs; at least 1 µs, "perfection
// is not allowed if SYNC is true"). adjtimex with no modes only reads, so it needs no privilege.
func clockEE() timestamp.ErrorEstimate {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return unsyncedEE
	}
	return eeFromTimex(tx.Status, tx.Esterror)
}

// eeFromTimex maps the kernel clock status and estimated error (µs) to an Error Estimate.
func eeFromTimex(status int32, esterrorUS int64) timestamp.ErrorEstimate {
	if status&staUnsync != 0 {
		return unsyncedEE
	}
	return timestamp.NewErrorEstimate(true, false, time.Duration(max(esterrorUS, 1))*time.Microsecond)
}
