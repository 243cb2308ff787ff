// Command mkwasm builds the tcpeng WebAssembly module (wasm/guest) reproducibly.
// `go generate ./wasm/guest` runs it:
//
//	go run ./wasm/wasmbuild/mkwasm -o wasm/guest/tcpeng.wasm
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

func main() {
	out := flag.String("o", "tcpeng.wasm", "the module file to write")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "mkwasm: unexpected arguments; usage: mkwasm [-o file.wasm]")
		os.Exit(2)
	}
	if err := wasmbuild.Build(context.Background(), "", *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	st, err := os.Stat(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkwasm:", err)
		os.Exit(1)
	}
	fmt.Printf("mkwasm: wrote %s (%d bytes)\n", *out, st.Size())
}
