//go:build !race

package extras

const raceEnabled = false
