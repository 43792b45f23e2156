package ociwrap

import "strings"

// Invocation is a parsed runtime command line: runc's global flags, the subcommand and
// the flags that matter to the wrapper.
type Invocation struct {
	// Global are the global flags, verbatim, to pass to runc again.
	Global []string
	// Root is runc's --root (state directory).
	Root string
	// Log is runc's --log file (JSON lines read back by containerd on failure).
	Log string
	// Command is the subcommand (create, start, delete, ...); empty when none was found.
	Command string
	// Args are the subcommand's arguments, verbatim.
	Args []string
	// Bundle, PidFile and ConsoleSocket are create's flags; ID is the container ID (the
	// last positional argument).
	Bundle, PidFile, ConsoleSocket, ID string
	// Extra are create flags other than those above (e.g. --no-pivot), passed to restore.
	Extra []string
}

// globalWithValue are runc's global flags that take a value.
var globalWithValue = map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}

// createWithValue are create's flags that take a value.
var createWithValue = map[string]bool{"--bundle": true, "-b": true, "--pid-file": true, "--console-socket": true, "--preserve-fds": true}

// Parse splits args (without argv[0]). It never fails: anything it does not understand
// ends up with Command "" or in Args, and the caller passes it to runc unchanged.
func Parse(args []string) Invocation {
	var inv Invocation
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		name = "--" + strings.TrimLeft(name, "-")
		inv.Global = append(inv.Global, a)
		if globalWithValue[name] && !hasVal && i+1 < len(args) {
			i++
			val = args[i]
			inv.Global = append(inv.Global, val)
		}
		switch name {
		case "--root":
			inv.Root = val
		case "--log":
			inv.Log = val
		}
	}
	if i >= len(args) {
		return inv
	}
	inv.Command, inv.Args = args[i], args[i+1:]
	switch inv.Command {
	case "create":
		inv.parseCreate()
	case "start":
		if len(inv.Args) > 0 {
			inv.ID = inv.Args[len(inv.Args)-1]
		}
	}
	return inv
}

func (inv *Invocation) parseCreate() {
	var pos []string
	for i := 0; i < len(inv.Args); i++ {
		a := inv.Args[i]
		if !strings.HasPrefix(a, "-") {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		if strings.HasPrefix(name, "--") || name == "-b" {
			// keep as is
		} else {
			name = "-" + strings.TrimLeft(name, "-")
		}
		if createWithValue[name] && !hasVal && i+1 < len(inv.Args) {
			i++
			val = inv.Args[i]
		}
		switch name {
		case "--bundle", "-b":
			inv.Bundle = val
		case "--pid-file":
			inv.PidFile = val
		case "--console-socket":
			inv.ConsoleSocket = val
		default:
			if createWithValue[name] {
				inv.Extra = append(inv.Extra, name+"="+val)
			} else {
				inv.Extra = append(inv.Extra, a)
			}
		}
	}
	if len(pos) > 0 {
		inv.ID = pos[len(pos)-1]
	}
}
