package main

import (
	"context"
	"errors"
	"testing"
	"time"
)

// seqLookup answers each lookup with the next entry of answers (the last repeats).
func seqLookup(answers ...[]string) (func(context.Context, string) ([]string, error), *int) {
	n := 0
	return func(context.Context, string) ([]string, error) {
		a := answers[min(n, len(answers)-1)]
		n++
		if a == nil {
			return nil, errors.New("no such host")
		}
		return a, nil
	}, &n
}

// With --service and --count the name is looked up again until it resolves to every
// holder (swarm's DNS lagging after a restore), and no longer than --settle.
func TestQueryWaitsForTheServiceToResolveToEveryHolder(t *testing.T) {
	five := []string{"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"}
	lookup, calls := seqLookup(nil, five[:3], five)
	q := queryConfig{Service: "holder", Port: "8080", Count: 5, Settle: 10 * time.Second, lookup: lookup}
	got, _, err := q.addrs(context.Background())
	if err != nil || len(got) != 5 || got[4] != "10.0.0.6:8080" || *calls != 3 {
		t.Fatalf("addrs = %v, %v after %d lookups; want the 5 holders after 3", got, err, *calls)
	}

	// Still 3 of 5 when --settle ends: audited as it is (the audit names the others).
	lookup, _ = seqLookup(five[:3])
	q = queryConfig{Service: "holder", Port: "8080", Count: 5, Settle: 600 * time.Millisecond, lookup: lookup}
	start := time.Now()
	got, waited, err := q.addrs(context.Background())
	if err != nil || len(got) != 3 || waited < 600*time.Millisecond || time.Since(start) > 5*time.Second {
		t.Fatalf("addrs = %v, %v, waited %s; want the 3 resolved holders after --settle", got, err, waited)
	}

	// Without --count one lookup is enough; a name that never resolves is an error.
	lookup, calls = seqLookup(five[:2])
	if got, _, err := (queryConfig{Service: "holder", Port: "8080", Settle: time.Minute, lookup: lookup}).addrs(context.Background()); err != nil || len(got) != 2 || *calls != 1 {
		t.Fatalf("without --count: %v, %v after %d lookups", got, err, *calls)
	}
	lookup, _ = seqLookup(nil)
	if _, _, err := (queryConfig{Service: "holder", Port: "8080", Count: 5, Settle: 300 * time.Millisecond, lookup: lookup}).addrs(context.Background()); err == nil {
		t.Fatal("a name that never resolved gave no error")
	}
}
