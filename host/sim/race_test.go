//go:build race

package sim

// raceEnabled: the race detector is on; the integrity suite runs fewer seeds.
const raceEnabled = true
