package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// ErrStatus is returned when the server answered with a non-2xx status code.
var ErrStatus = errors.New("probe: non-2xx status")

// Normalize turns the short forms accepted on the command line into a full URL:
// "/value" -> "http://127.0.0.1:8080/value", "host:9000/x" -> "http://host:9000/x".
func Normalize(target string) string {
	switch {
	case strings.HasPrefix(target, "http://"), strings.HasPrefix(target, "https://"):
		return target
	case strings.HasPrefix(target, "/"):
		return "http://127.0.0.1:8080" + target
	default:
		return "http://" + target
	}
}

// Get fetches url and writes the body to w. It fails with ErrStatus (wrapped, with the
// body) when the status is not 2xx.
func Get(ctx context.Context, url string, timeout time.Duration, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe: bad URL %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: GET %s: %w (is the workload running and listening?)", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("probe: reading body of %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %s: %w", url, resp.Status, strings.TrimSpace(string(body)), ErrStatus)
	}
	_, err = w.Write(body)
	return err
}

// Main implements the `get` subcommand: args are one or more URLs (short forms allowed);
// each body is written to stdout. It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: get URL|/path|host:port/path ... (GET each, print body, exit 1 on non-2xx)")
		return 2
	}
	code := 0
	for _, a := range args {
		if err := Get(ctx, Normalize(a), 10*time.Second, stdout); err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
		}
	}
	return code
}
