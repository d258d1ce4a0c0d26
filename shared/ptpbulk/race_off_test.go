//go:build !race

package ptpbulk

const raceEnabled = false
