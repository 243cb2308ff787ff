// Package wazero runs the tcpeng engine compiled to WebAssembly (wasm/guest)
// under wazero, sandboxed, behind the same engine.Engine interface as the
// native *engine.Stack: for the same Config and the same Inputs it returns the
// same Outputs, byte for byte.
//
// The module is compiled once (with wazero's compilation cache) and each
// Engine is one instance of it, with no filesystem, no network, no clock and no
// randomness but the Config's seed (wazero's deterministic defaults), and a
// memory limit. The ABI it speaks is wasm/abi/README.md.
//
// Failures of the guest are contained: a malformed message gets an EventFault
// (ErrInvalid); a guest panic or a trap makes the Engine start a fresh engine
// with the same Config and report EventFault (ErrAborted) and, for every
// connection and listener the application held, EventError (ErrAborted).
//
//	eng, err := wazero.NewFromFile(ctx, "wasm/guest/tcpeng.wasm", engine.Config{Addrs: ...})
//	...
//	eng.Step(&in, &out)
package wazero

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/wasm/abi"
)

// Options tune how the module is run. The zero value is ready to use.
type Options struct {
	// MemoryLimitPages bounds each instance's linear memory, in 64 KiB pages.
	// Default DefaultMemoryLimitPages (512 MiB). An engine that needs more
	// (many connections with large buffers) traps, and is restarted.
	MemoryLimitPages uint32
	// Cache is the compilation cache. Default: one shared by the whole process,
	// so that a module's bytes are compiled once.
	Cache wazero.CompilationCache
	// Stderr receives what the guest writes to its standard error: the Go
	// runtime's report when it crashes. Default: discarded.
	Stderr io.Writer
}

// DefaultMemoryLimitPages is the default memory limit: 512 MiB.
const DefaultMemoryLimitPages = 8192

var (
	sharedCacheOnce sync.Once
	sharedCache     wazero.CompilationCache
)

func defaultCache() wazero.CompilationCache {
	sharedCacheOnce.Do(func() { sharedCache = wazero.NewCompilationCache() })
	return sharedCache
}

// Module is the compiled tcpeng module. It is safe for concurrent use; each
// Engine made from it is one instance.
type Module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	stderr   io.Writer
}

// exports the host needs, with their signatures (wasm/abi/README.md, "Exports").
var exports = []struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
}{
	{abi.ExportInitialize, nil, nil},
	{abi.ExportVersion, nil, []api.ValueType{api.ValueTypeI32}},
	{abi.ExportAlloc, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{abi.ExportInit, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{abi.ExportStep, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{abi.ExportDebugFault, []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
}

// Compile compiles the module's bytes. The exports are checked here; the ABI
// version when an Engine is made.
func Compile(ctx context.Context, wasm []byte, opts *Options) (*Module, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MemoryLimitPages == 0 {
		o.MemoryLimitPages = DefaultMemoryLimitPages
	}
	if o.MemoryLimitPages > 65536 {
		return nil, errors.New("tcpeng/wazero: Options.MemoryLimitPages " + itoa(int(o.MemoryLimitPages)) + " is over 65536 (4 GiB)")
	}
	if o.Cache == nil {
		o.Cache = defaultCache()
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(o.Cache).
		WithMemoryLimitPages(o.MemoryLimitPages))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		rt.Close(ctx)
		return nil, errors.New("tcpeng/wazero: WASI: " + err.Error())
	}
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		rt.Close(ctx)
		return nil, errors.New("tcpeng/wazero: compile the module: " + err.Error() + " (is it tcpeng.wasm built by `go generate ./wasm/guest`?)")
	}
	defs := compiled.ExportedFunctions()
	for _, x := range exports {
		d, ok := defs[x.name]
		if !ok || !sameTypes(d.ParamTypes(), x.params) || !sameTypes(d.ResultTypes(), x.results) {
			rt.Close(ctx)
			return nil, errors.New("tcpeng/wazero: the module has no export " + x.name + " of the ABI's signature: it is not a tcpeng module (build it with `go generate ./wasm/guest`)")
		}
	}
	if _, ok := compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		rt.Close(ctx)
		return nil, errors.New("tcpeng/wazero: the module exports no memory: it is not a tcpeng module")
	}
	return &Module{rt: rt, compiled: compiled, stderr: o.Stderr}, nil
}

// CompileFile reads and compiles the module at path.
func CompileFile(ctx context.Context, path string, opts *Options) (*Module, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.New("tcpeng/wazero: " + err.Error() + " (build the module with `go generate ./wasm/guest`)")
	}
	return Compile(ctx, b, opts)
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Close closes the module and every Engine made from it.
func (m *Module) Close(ctx context.Context) error { return m.rt.Close(ctx) }

// New returns an engine configured by cfg, running in a new instance of m.
// The Config's errors are the native engine's.
func (m *Module) New(ctx context.Context, cfg engine.Config) (*Engine, error) {
	e := &Engine{m: m, cfg: cfg, ctx: context.Background(), stack: make([]uint64, 2)}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// New compiles wasm (once per process for the same bytes, through the shared
// compilation cache) and returns an engine configured by cfg. Closing the
// engine releases the module.
func New(ctx context.Context, wasm []byte, cfg engine.Config) (*Engine, error) {
	m, err := Compile(ctx, wasm, nil)
	if err != nil {
		return nil, err
	}
	e, err := m.New(ctx, cfg)
	if err != nil {
		m.Close(ctx)
		return nil, err
	}
	e.ownModule = true
	return e, nil
}

// NewFromFile is New with the module read from path.
func NewFromFile(ctx context.Context, path string, cfg engine.Config) (*Engine, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.New("tcpeng/wazero: " + err.Error() + " (build the module with `go generate ./wasm/guest`)")
	}
	return New(ctx, b, cfg)
}

// errVersion says that a module speaks another ABI.
func errVersion(v uint32) error {
	return errors.New("tcpeng/wazero: the module speaks ABI " + abi.VersionString(v) + ", this binding " +
		abi.VersionString(abi.Version) + ": rebuild the module from the same source tree (`go generate ./wasm/guest`)")
}

// instance is one instantiation of the module.
type instance struct {
	mod                  api.Module
	mem                  api.Memory
	alloc, init, step, f api.Function
	reqPtr, reqCap       uint32
}

// instantiate makes an instance, checks its ABI version and initializes its
// engine with the Config.
func (e *Engine) instantiate(ctx context.Context) (*instance, error) {
	mod, err := e.m.rt.InstantiateModule(ctx, e.m.compiled, wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(abi.ExportInitialize).
		WithStderr(e.m.stderr))
	if err != nil {
		return nil, errors.New("tcpeng/wazero: instantiate the module: " + err.Error())
	}
	in := &instance{
		mod: mod, mem: mod.Memory(),
		alloc: mod.ExportedFunction(abi.ExportAlloc), init: mod.ExportedFunction(abi.ExportInit),
		step: mod.ExportedFunction(abi.ExportStep), f: mod.ExportedFunction(abi.ExportDebugFault),
	}
	stack := e.stack
	if err := mod.ExportedFunction(abi.ExportVersion).CallWithStack(ctx, stack); err != nil {
		mod.Close(ctx)
		return nil, errors.New("tcpeng/wazero: abi_version: " + err.Error())
	}
	if v := uint32(stack[0]); !abi.Compatible(v) {
		mod.Close(ctx)
		return nil, errVersion(v)
	}
	req := abi.AppendConfig(e.enc[:0], &e.cfg)
	e.enc = req
	ptr, ok := in.request(ctx, stack, len(req))
	if !ok {
		mod.Close(ctx)
		return nil, errors.New("tcpeng/wazero: the module refused a request buffer for the Config")
	}
	in.mem.Write(ptr, req)
	stack[0], stack[1] = uint64(ptr), uint64(len(req))
	if err := in.init.CallWithStack(ctx, stack); err != nil {
		mod.Close(ctx)
		return nil, errors.New("tcpeng/wazero: init trapped: " + err.Error())
	}
	resp, ok := in.response(stack[0])
	if !ok {
		mod.Close(ctx)
		return nil, errors.New("tcpeng/wazero: init answered outside the module's memory")
	}
	r, err := abi.DecodeStatus(resp)
	switch {
	case err != nil:
		err = errors.New("tcpeng/wazero: init answered a malformed message: " + err.Error())
	case r.Status == abi.StatusBadConfig:
		err = errors.New(string(r.Message)) // the engine's own error
	case r.Status != abi.StatusOK:
		err = errors.New("tcpeng/wazero: init failed (" + r.Status.String() + "): " + string(r.Message))
	}
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	return in, nil
}

// request returns the address of the guest's request buffer, grown to at
// least n bytes.
func (in *instance) request(ctx context.Context, stack []uint64, n int) (uint32, bool) {
	if n > abi.MaxRequest {
		return 0, false
	}
	if uint32(n) <= in.reqCap && in.reqPtr != 0 {
		return in.reqPtr, true
	}
	want := min(max(n, 2*int(in.reqCap), 64<<10), abi.MaxRequest)
	stack[0] = uint64(want)
	if err := in.alloc.CallWithStack(ctx, stack); err != nil || uint32(stack[0]) == 0 {
		return 0, false
	}
	in.reqPtr, in.reqCap = uint32(stack[0]), uint32(want)
	return in.reqPtr, true
}

// response returns a view of the response an export's result names.
func (in *instance) response(v uint64) ([]byte, bool) {
	ptr, n := abi.Unpack(v)
	return in.mem.Read(ptr, n)
}

func itoa(n int) string { return strconv.Itoa(n) }
