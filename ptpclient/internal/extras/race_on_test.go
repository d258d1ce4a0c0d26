//go:build race

package extras

// raceEnabled: the throughput comparison asserts only without the race detector (CI runs with
// it on a shared machine; scripts/bench runs without).
const raceEnabled = true
