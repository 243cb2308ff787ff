// Command tcpeng is the command line of the tcpeng TCP/IP engine.
//
//	tcpeng demo [flags]    two engines on an in-memory wire: one connection, traced
//	tcpeng serve [flags]   the engine on a TUN device, answering the kernel
//	tcpeng forward [flags] userspace networking for a network namespace
//
// Run `tcpeng -h` or `tcpeng demo -h` for the details.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// subcommand is one of tcpeng's commands.
type subcommand struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

var subcommands = []subcommand{
	{"demo", "run two engines joined by an in-memory wire and trace one TCP connection", runDemo},
	{"serve", "put the engine on a TUN device and answer the kernel (echo, discard, chargen, HTTP)", runServe},
	{"forward", "userspace networking for a network namespace (like slirp4netns and pasta)", runForward},
}

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and something went wrong
	exitUsage = 2 // bad flags or arguments
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func usage(w io.Writer) {
	fmt.Fprintf(w, `tcpeng is a TCP/IP engine with no I/O of its own: frames, time and commands go
in, frames, events and a deadline come out. This command runs it.

Usage:
  tcpeng <command> [flags]
  tcpeng <command> -h      help on one command

Commands:
`)
	for _, c := range subcommands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Start with:
  tcpeng demo
`)
}

// run runs tcpeng with args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			return run([]string{args[1], "-h"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range subcommands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	var names []string
	for _, c := range subcommands {
		names = append(names, c.name)
	}
	if strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "tcpeng: %s comes before a command: give a command first (%s), e.g. tcpeng demo %s\n",
			args[0], strings.Join(names, ", "), args[0])
	} else {
		fmt.Fprintf(stderr, "tcpeng: unknown command %q: the commands are %s (tcpeng -h)\n", args[0], strings.Join(names, ", "))
	}
	return exitUsage
}

// parseFlags parses args with fs, printing fs's usage to stdout for -h. It
// returns the exit code to return and whether to stop. Bad flags, or any
// argument after them, give one line on stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	if code, stop := parseFlagsArgs(fs, args, stdout, stderr); stop {
		return code, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tcpeng %s: unexpected argument %q: it takes only flags (tcpeng %s -h)\n", fs.Name(), fs.Arg(0), fs.Name())
		return exitUsage, true
	}
	return exitOK, false
}

// parseFlagsArgs is parseFlags for a command that takes arguments after its
// flags (fs.Args()).
func parseFlagsArgs(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (int, bool) {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK, true
	case err != nil:
		fmt.Fprintf(stderr, "tcpeng %s: %v (tcpeng %s -h lists the flags)\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	return exitOK, false
}

// failer returns the function that prints err as the one line of a failing
// command on stderr and returns code.
func failer(stderr io.Writer, command string) func(code int, err error) int {
	return func(code int, err error) int {
		fmt.Fprintf(stderr, "tcpeng %s: %s\n", command, oneLine(err))
		return code
	}
}
