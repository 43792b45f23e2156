// Command swarmckpt takes consistent, coordinated checkpoints of Docker Swarm stacks and
// restores or migrates them onto other nodes. See README.md and docs/.
//
// The CLI uses the standard library's flag package: one FlagSet per subcommand, dispatched
// from the table in commands(). Each subcommand lives in its own file of this package and
// holds only flag parsing, wiring and output; the logic is in the library packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Exit codes, documented in docs/cli.md.
const (
	exitOK          = 0
	exitFailure     = 1 // the operation failed
	exitUsage       = 2 // bad flags or arguments
	exitInterrupted = 130
)

// cli is what every subcommand receives: its output streams and logger. No globals.
type cli struct {
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

// usageError marks errors in the user's flags or arguments (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{msg: fmt.Sprintf(format, a...)} }

// exitCodeError carries a specific exit code.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func commands() map[string]command {
	return map[string]command{
		"lab":         {summary: "run a local multi-node Docker Swarm lab (up, down, status, env, deploy)", run: runLab},
		"worker":      {summary: "run the node agent: lock, freeze, dump, restore, transfer (docs/dataplane.md)", run: runWorker},
		"version":     {summary: "print the version", run: runVersion},
		"coordinator": {summary: "run the coordinator (embedded NATS + etcd by default) or a node's agent", run: runCoordinator},
		"snapshot":    {summary: "take a consistent snapshot of a stack", run: runSnapshot},
		"ls":          {summary: "list snapshots", run: runLs},
		"inspect":     {summary: "show a snapshot; --verify checks its cut", run: runInspect},
		"rm":          {summary: "delete snapshots", run: runRm},
		"restore":     {summary: "restore a snapshot on other nodes", run: runRestore},
		"migrate":     {summary: "move a stack to or off a node (cold)", run: runMigrate},
		"sim":         {summary: "simulate a checkpoint algorithm at scale (deterministic, seeded)", run: runSim},
		"readdress":   {summary: "rewrite socket addresses in a restore directory's CRIU images (run by swarmckpt-runtime)", run: runReaddress},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	level := slog.LevelInfo
	if os.Getenv("SWARMCKPT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	c := &cli{stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "swarmckpt: unknown command %q; run 'swarmckpt --help' for the list\n", args[0])
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first Ctrl-C or SIGTERM cancels ctx (commands abort and release cleanly);
	// after it the default handling is back, so a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	err := cmd.run(ctx, c, args[1:])
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "swarmckpt %s: %v\n", args[0], err)
	var ue *usageError
	var ce *exitCodeError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ce):
		return ce.code
	case ctx.Err() != nil:
		return exitInterrupted
	}
	return exitFailure
}

func printUsage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "swarmckpt: consistent checkpoints, restore and live migration of Docker Swarm stacks")
	fmt.Fprintln(w, "\nUsage: swarmckpt <command> [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'swarmckpt <command> --help' for a command's flags and examples.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 failed, 2 bad usage, 130 interrupted (see docs/cli.md).")
}

// errHelp is returned by parseFlags when -h was given and usage was printed.
var errHelp = errors.New("help requested")

// parseFlags parses args into fs, printing usage (with examples) to c.stdout on -h.
func parseFlags(c *cli, fs interface {
	Parse([]string) error
	SetOutput(io.Writer)
	PrintDefaults()
}, usage string, args []string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, errFlagHelp()) {
			fmt.Fprintln(c.stdout, strings.TrimSpace(usage))
			fmt.Fprintln(c.stdout, "\nFlags:")
			fs.SetOutput(c.stdout)
			fs.PrintDefaults()
			return errHelp
		}
		return usagef("%v (run with --help for usage)", err)
	}
	return nil
}
