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

// A holder that cannot be reached at first (the query's new container does not reach
// another node's tasks until swarm's overlay learnt them) is asked again until it
// answers, and no longer than until; how late it answered is recorded.
func TestRetryUntilTheHolderAnswers(t *testing.T) {
	var late lateness
	tries := 0
	err := retry(context.Background(), time.Now().Add(10*time.Second), &late, "10.0.0.4:8080", func() error {
		tries++
		if tries < 4 {
			return errors.New("Client.Timeout exceeded")
		}
		return nil
	})
	if err != nil || tries != 4 || late.addr != "10.0.0.4:8080" || late.max < 700*time.Millisecond {
		t.Fatalf("retry = %v after %d tries, late %s after %s; want success on the 4th try, recorded late", err, tries, late.addr, late.max)
	}
	start := time.Now()
	err = retry(context.Background(), time.Now().Add(500*time.Millisecond), nil, "x", func() error { return errors.New("unreachable") })
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("retry of a holder that never answers = %v after %s; want its error once until passed", err, time.Since(start))
	}
	tries = 0
	if err := retry(context.Background(), time.Time{}, nil, "x", func() error { tries++; return errors.New("down") }); err == nil || tries != 1 {
		t.Fatalf("retry with a past deadline: %v after %d tries, want one try", err, tries)
	}
}
