// Package siphash implements SipHash-2-4 (Aumasson and Bernstein, 2012), a keyed
// hash for short inputs. The engine uses it for initial sequence numbers
// (RFC 6528 §3's F()), ephemeral port offsets and the connection table, so that a
// peer who does not know the key can neither predict them nor flood one bucket.
package siphash

import (
	"encoding/binary"
	"math/bits"
)

// Key is a 128-bit SipHash key.
type Key struct{ K0, K1 uint64 }

// KeyFrom returns the key held in 16 bytes, little-endian as the reference does.
func KeyFrom(b [16]byte) Key {
	return Key{binary.LittleEndian.Uint64(b[0:]), binary.LittleEndian.Uint64(b[8:])}
}

func round(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}

// Sum64 returns SipHash-2-4 of b under key k. It does not allocate.
func Sum64(k Key, b []byte) uint64 {
	v0 := k.K0 ^ 0x736f6d6570736575
	v1 := k.K1 ^ 0x646f72616e646f6d
	v2 := k.K0 ^ 0x6c7967656e657261
	v3 := k.K1 ^ 0x7465646279746573
	n := len(b)
	for len(b) >= 8 {
		m := binary.LittleEndian.Uint64(b)
		v3 ^= m
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
		v0 ^= m
		b = b[8:]
	}
	m := uint64(n) << 56
	for i := len(b) - 1; i >= 0; i-- {
		m |= uint64(b[i]) << (8 * i)
	}
	v3 ^= m
	v0, v1, v2, v3 = round(v0, v1, v2, v3)
	v0, v1, v2, v3 = round(v0, v1, v2, v3)
	v0 ^= m
	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = round(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}
