//go:build !unix

package wazero

import "time"

// cpuTime is not measured here: TestW5 reports wall-clock rates only.
func cpuTime() time.Duration { return 0 }
