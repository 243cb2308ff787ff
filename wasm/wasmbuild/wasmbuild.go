// Package wasmbuild builds the tcpeng WebAssembly module (wasm/guest) with the
// Go toolchain, the same way every time: GOOS=wasip1 GOARCH=wasm,
// -buildmode=c-shared (a reactor), -trimpath, no VCS stamp, no symbol table and
// an empty build ID, so that one source tree and one toolchain give one
// byte-identical module.
package wasmbuild

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Package is the import path of the guest program.
const Package = "github.com/tcpeng/tcpeng/wasm/guest"

// Args returns the arguments of `go build` that write the module to out.
func Args(out string) []string {
	return []string{"build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, Package}
}

// Env returns the environment of the build: the current one with the target set.
func Env() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GOOS="), strings.HasPrefix(kv, "GOARCH="),
			strings.HasPrefix(kv, "CGO_ENABLED="), strings.HasPrefix(kv, "GOWASM="):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// Build builds the module into out. dir is a directory inside the tcpeng
// module ("" is the current one).
func Build(ctx context.Context, dir, out string) error {
	goBin, err := goTool()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, goBin, Args(abs)...)
	cmd.Dir = dir
	cmd.Env = Env()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return errors.New("wasmbuild: go " + strings.Join(Args(abs), " ") + ": " + err.Error() + "\n" + stderr.String())
	}
	return nil
}

// goTool finds the go command: $GO, or go on PATH.
func goTool() (string, error) {
	if g := os.Getenv("GO"); g != "" {
		return g, nil
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("wasmbuild: no go command: put the Go toolchain on PATH or set GO")
	}
	return p, nil
}
