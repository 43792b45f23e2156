package main

import (
	"bytes"
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
