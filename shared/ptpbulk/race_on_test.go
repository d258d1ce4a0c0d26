//go:build race

package ptpbulk

// raceEnabled: the race detector slows the engine several times; throughput comparisons skip.
const raceEnabled = true
