module github.com/tcpeng/tcpeng/bench

go 1.26.3

require (
	github.com/tcpeng/tcpeng v0.0.0-00010101000000-000000000000
	golang.org/x/sys v0.49.0
	gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237
)

require (
	github.com/google/btree v1.1.2 // indirect
	github.com/tetratelabs/wazero v1.12.0 // indirect
	golang.org/x/exp v0.0.0-20250711185948-6ae5c78190dc // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/tcpeng/tcpeng => ../
