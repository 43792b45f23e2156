// Command swarmckpt-runtime is the OCI runtime wrapper installed as each node's default
// Docker runtime (/usr/local/bin/swarmckpt-runtime, registered in daemon.json as runtime
// "swarmckpt" with "default-runtime": "swarmckpt"). It turns `create` into `runc restore`
// for containers whose checkpoint the swarmckpt worker placed on the node, holds the
// `kill` of containers the worker armed for a drain until the worker has checkpointed
// them (docs/drain.md), and passes every other call to runc unchanged. See worker/ociwrap and docs/restore.md.
//
// Called as `swarmckpt-runtime __swarmckpt_hold DURATION` it is instead the process of
// a network keeper container (ociwrap.Hold): it sleeps until DURATION or SIGTERM.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == ociwrap.HoldArg {
		d, err := time.ParseDuration(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "swarmckpt-runtime: hold:", err)
			os.Exit(2)
		}
		ociwrap.Hold(d)
		return
	}
	runc, err := ociwrap.FindRunc()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	os.Exit(ociwrap.New(runc).Main(os.Args[1:]))
}
