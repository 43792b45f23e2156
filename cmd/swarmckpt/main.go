// Command swarmckpt takes consistent, coordinated checkpoints of Docker Swarm stacks and
// restores or migrates them onto other nodes. See README.md and docs/.
//
// The CLI uses the standard library's flag package: one FlagSet per subcommand, dispatched
// from the table in commands(), each parsed by cli.parseArgs (flags before or after the
// arguments). Each subcommand lives in its own file of this package and holds only flag
// parsing, wiring and output; the logic is in the library packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
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
	// parsed, when set (tests only), is called by parseArgs with the flag set and the
	// positional arguments instead of returning them: the command then ends with
	// errParsed before doing anything.
	parsed func(fs *flag.FlagSet, pos []string)
	// transport, when set (tests only), is the control-plane connection the user
	// commands use instead of dialing NATS.
	transport func() bus.Transport
}

// command is one subcommand.
type command struct {
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
	// subs are the words that may follow the command's name to pick a subcommand
	// ("" is the command alone); nil means the command has none.
	subs []string
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
		"lab":         {summary: "run a local multi-node Docker Swarm lab (up, down, status, env, deploy, fail, recover)", run: runLab, subs: labSubcommands},
		"worker":      {summary: "run a node's data plane: lock, freeze, dump, restore, transfer (docs/dataplane.md)", run: runWorker, subs: []string{"", "watchdog", "tls-init"}},
		"version":     {summary: "print the version", run: runVersion},
		"coordinator": {summary: "run the coordinator (embedded NATS + etcd by default), or write agents' NATS credentials", run: runCoordinator, subs: []string{"", "agent", "credentials"}},
		"agent":       {summary: "run a node's agent next to its worker: snapshots, transfers and restores over NATS", run: runAgent},
		"snapshot":    {summary: "take a consistent snapshot of a stack", run: runSnapshot},
		"ls":          {summary: "list snapshots", run: runLs},
		"status":      {summary: "show the coordinators (leader, standbys), the nodes and the running operations", run: runStatus},
		"policy":      {summary: "show each stack's policy from its swarmckpt.* labels: schedule, retention, next and last run", run: runPolicy},
		"inspect":     {summary: "show a snapshot; --verify checks its cut", run: runInspect},
		"rm":          {summary: "delete snapshots", run: runRm},
		"restore":     {summary: "restore a snapshot on other nodes", run: runRestore},
		"migrate":     {summary: "move a stack to or off a node (cold)", run: runMigrate},
		"node":        {summary: "drain a node, moving its labelled stacks off it first, or activate it again", run: runNode, subs: nodeSubcommands},
		"events":      {summary: "follow what the coordinator decides and does (drains, holds, checkpoints, node loss)", run: runEvents},
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
	fmt.Fprintln(w, "swarmckpt: consistent checkpoints, restore and (cold) migration of Docker Swarm stacks")
	fmt.Fprintln(w, "\nUsage: swarmckpt <command> [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nFlags may come before or after the arguments; -- ends the flags.")
	fmt.Fprintln(w, "Run 'swarmckpt <command> --help' for a command's flags and examples.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 failed, 2 bad usage, 130 interrupted (see docs/cli.md).")
}

// errHelp is returned by parseArgs when -h was given and usage was printed.
var errHelp = errors.New("help requested")

// errParsed is returned by parseArgs when cli.parsed is set (tests).
var errParsed = errors.New("arguments parsed (test hook)")

// parseArgs is how every command and subcommand parses its arguments: flags defined on
// fs may come before, between or after the positional arguments, which it returns in
// order; "--" ends the flags (every argument after it is positional, even one that
// starts with '-'). -h or --help prints usage (with examples) and the flags to
// c.stdout and returns errHelp; a bad flag is a usage error (exit 2).
func (c *cli) parseArgs(fs *flag.FlagSet, usage string, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		// One flag (with its value) at a time: fs parses exactly its tokens.
		n := flagTokens(fs, args)
		if err := fs.Parse(args[:n]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(c.stdout, strings.TrimSpace(usage))
				fmt.Fprintln(c.stdout, "\nFlags:")
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				return nil, errHelp
			}
			return nil, usagef("%v (run with --help for usage)", err)
		}
		args = args[n:]
	}
	if c.parsed != nil {
		c.parsed(fs, pos)
		return nil, errParsed
	}
	return pos, nil
}

// flagTokens is how many of args, args[0] being a flag, that flag takes: 2 for a
// flag with a value (not boolean) written as "--name value", else 1.
func flagTokens(fs *flag.FlagSet, args []string) int {
	name := strings.TrimPrefix(strings.TrimPrefix(args[0], "-"), "-")
	if strings.Contains(name, "=") || len(args) < 2 {
		return 1
	}
	f := fs.Lookup(name)
	if f == nil {
		return 1 // unknown, or -h: Parse says so
	}
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return 1
	}
	return 2
}

// noArgs refuses positional arguments of a command that takes none.
// parseNoArgs is parseArgs for a command that takes no positional arguments (cmd names
// it in the usage error).
func (c *cli) parseNoArgs(fs *flag.FlagSet, usage, cmd string, args []string) error {
	pos, err := c.parseArgs(fs, usage, args)
	if err != nil {
		return err
	}
	return noArgs(cmd, pos)
}

func noArgs(cmd string, pos []string) error {
	if len(pos) > 0 {
		return usagef("%s takes no arguments, got %q (flags start with --)", cmd, pos)
	}
	return nil
}

// badName turns the first failed name check (api.ValidID and friends) into a usage
// error (exit 2); nil if all passed.
func badName(checks ...error) error {
	for _, err := range checks {
		if err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	return nil
}
