// Package prng is the engine's only source of randomness: a small deterministic
// generator seeded from the Config, so the same seed and inputs give the same
// outputs.
package prng

// Rand is a SplitMix64 generator (Steele, Lea, Flood 2014): 8 bytes of state,
// statistically sound for port selection and jitter, not cryptographic. Secrets
// (initial sequence numbers) use the keyed hash in internal/siphash instead.
type Rand struct{ state uint64 }

// New returns a generator seeded with seed.
func New(seed uint64) Rand { return Rand{state: seed} }

// Uint64 returns the next 64 random bits.
func (r *Rand) Uint64() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Uint32n returns a number in [0, n) for n > 0 (Lemire's multiply-shift; the
// bias is below 2^-32 and irrelevant here).
func (r *Rand) Uint32n(n uint32) uint32 { return uint32((r.Uint64() >> 32) * uint64(n) >> 32) }
