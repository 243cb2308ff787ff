//go:build wasm

package wire

// WebAssembly has no carry flag, and bulk copies (memory.copy) are faster than
// a Go loop: sum without a carry chain, and copy before summing.
const wasmForm = true
