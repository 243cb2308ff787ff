//go:build !wasm

package wire

// Native code sums with the carry chain of bits.Add64 (ADC on amd64, ADDS/ADCS
// on arm64), copying and summing in one pass; see checksum_wasm.go.
const wasmForm = false
