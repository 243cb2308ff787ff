// Command guest is the tcpeng engine as a WebAssembly module: built with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared (a reactor: the host calls
// _initialize first), it exports the functions of the ABI that
// ../abi/README.md specifies, via //go:wasmexport.
//
// Build it with
//
//	go generate ./wasm/guest
//
// which writes wasm/guest/tcpeng.wasm (never committed). Built for any other
// target the program does nothing.
package main

//go:generate go run ../wasmbuild/mkwasm -o tcpeng.wasm

func main() {}
