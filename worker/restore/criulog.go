package restore

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// criuTimes is how long CRIU's restore of one container took, read from its log.
type criuTimes struct {
	// Total is the time of the log's last line: CRIU's start to the resumed tasks.
	Total time.Duration
	// Pages is the time the restorer spent reading the memory pages into the new
	// processes (each "Preadv" line to its "`- returned" line): on this machine the
	// part that grows with the container's memory and swings with the VM's memory.
	Pages time.Duration
	// Hooks is the time CRIU waited for runc's answer to its "setup-namespaces"
	// notification, in which runc runs the bundle's prestart hooks (Docker's
	// libnetwork-setkey, the wrapper's lock and sysctl hooks): from "Running
	// setup-namespaces scripts" to CRIU's next own line. A fresh start pays the
	// libnetwork hook too.
	Hooks time.Duration
}

// readCRIUTimes reads the timestamps of a CRIU restore log (runc runs CRIU at log level
// 4: every line starts with "(SS.ffffff)", the seconds since CRIU started). ok is false
// when the log has no timestamped line.
func readCRIUTimes(r io.Reader) (t criuTimes, ok bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var last, preadv, hooks float64
	reading, inHooks := false, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "(") {
			continue
		}
		end := strings.IndexByte(line, ')')
		if end < 0 {
			continue
		}
		s, err := strconv.ParseFloat(line[1:end], 64)
		if err != nil {
			continue
		}
		// Each CRIU process of the restore (restorer blobs log into the same file)
		// counts from its own start; the largest value is the whole restore.
		last, ok = max(last, s), true
		rest := line[end+1:]
		if inHooks && !strings.Contains(rest, "RPC") {
			t.Hooks += seconds(s - hooks)
			inHooks = false
		}
		switch {
		case strings.Contains(rest, "Running setup-namespaces scripts"):
			hooks, inHooks = s, true
		case strings.Contains(rest, " Preadv "):
			preadv, reading = s, true
		case reading && strings.Contains(rest, "`- returned"):
			t.Pages += seconds(s - preadv)
			reading = false
		}
	}
	t.Total = seconds(last)
	return t, ok
}

func seconds(s float64) time.Duration {
	if s < 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}
