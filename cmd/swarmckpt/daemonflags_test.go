package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// --log-format json makes the daemon's logger write one JSON object a line; text
// keeps key=value; anything else is a usage error naming the choices.
func TestLogFormat(t *testing.T) {
	for _, tc := range []struct {
		args []string
		json bool
	}{{nil, false}, {[]string{"--log-format", "text"}, false}, {[]string{"--log-format", "json"}, true}} {
		var buf bytes.Buffer
		c := &cli{stdout: io.Discard, stderr: &buf}
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		var d daemonFlags
		d.register(fs, true)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if err := d.apply(c); err != nil {
			t.Fatal(err)
		}
		c.log.Info("hello", "node", "lab-1")
		var obj map[string]any
		isJSON := json.Unmarshal(buf.Bytes(), &obj) == nil && obj["msg"] == "hello" && obj["node"] == "lab-1"
		if isJSON != tc.json || (!tc.json && !strings.Contains(buf.String(), "node=lab-1")) {
			t.Errorf("%v: logged %q", tc.args, buf.String())
		}
	}
	d := daemonFlags{logFormat: "xml"}
	var ue *usageError
	if err := d.apply(&cli{stderr: io.Discard}); !errors.As(err, &ue) || !strings.Contains(err.Error(), "text or json") {
		t.Fatalf("--log-format xml: %v, want a usage error naming text and json", err)
	}
}

// The worker starts its watchdog with its own --log-format, and 'worker watchdog
// --log-format json' logs JSON (before, the watchdog logged text whatever the worker's
// format).
func TestWatchdogLogFormat(t *testing.T) {
	argv, err := watchdogArgv("json")
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(argv, " "); !strings.Contains(s, " worker watchdog --journal {journal} --log-format json") {
		t.Fatalf("watchdog argv %q lacks the worker's --log-format json", s)
	}
	var buf bytes.Buffer
	c := &cli{stdout: io.Discard, stderr: &buf}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // it starts, logs and stops at once
	journal := t.TempDir()
	if err := runWorker(ctx, c, []string{"watchdog", "--journal", journal, "--log-format", "json"}); err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(buf.String(), "\n")
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil || obj["msg"] != "watchdog started" || obj["journal"] != journal {
		t.Fatalf("watchdog logged %q, want a JSON line saying it started on %s", buf.String(), journal)
	}
}
