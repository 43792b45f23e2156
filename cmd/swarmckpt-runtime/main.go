// Command swarmckpt-runtime is the OCI runtime wrapper installed as each node's default
// Docker runtime (/usr/local/bin/swarmckpt-runtime, registered in daemon.json as runtime
// "swarmckpt" with "default-runtime": "swarmckpt"). It turns `create` into `runc restore`
// for containers whose checkpoint the swarmckpt worker placed on the node and passes
// every other call to runc unchanged. See worker/ociwrap and docs/restore.md.
package main

import (
	"fmt"
	"os"

	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
)

func main() {
	runc, err := ociwrap.FindRunc()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(127)
	}
	os.Exit(ociwrap.New(runc).Main(os.Args[1:]))
}
