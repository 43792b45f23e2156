package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"/value":              "http://127.0.0.1:8080/value",
		"bank1:8080/state":    "http://bank1:8080/state",
		"http://x:1/y":        "http://x:1/y",
		"https://x/y":         "https://x/y",
		"10.0.0.1:8080/check": "http://10.0.0.1:8080/check",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGetStatusCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			http.Error(w, "unhealthy: gaps=3", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := Get(context.Background(), srv.URL+"/good", time.Second, &out); err != nil || out.String() != "ok\n" {
		t.Fatalf("good: %q, %v", out.String(), err)
	}
	err := Get(context.Background(), srv.URL+"/bad", time.Second, &out)
	if !errors.Is(err, ErrStatus) || !strings.Contains(err.Error(), "gaps=3") {
		t.Fatalf("bad: %v, want ErrStatus carrying the body", err)
	}
	var stderr bytes.Buffer
	if code := Main(context.Background(), []string{srv.URL + "/good", srv.URL + "/bad"}, &out, &stderr); code != 1 {
		t.Fatalf("Main with one failing URL exited %d, want 1", code)
	}
}
