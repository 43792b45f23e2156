package main

import (
	"errors"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: "HELLO", A: 3, B: 5, C: 1000},
		{Kind: "T", A: 17, B: 9},
		{Kind: "A", A: 17, B: 12345},
	} {
		got, err := ParseMessage(string(m.Format()))
		if err != nil || got != m {
			t.Errorf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	for _, bad := range []string{"", "X 1 2\n", "T 1\n", "T 1 2 3\n", "T -1 2\n", "HELLO 1 2\n", "A x 1\n"} {
		if _, err := ParseMessage(bad); !errors.Is(err, ErrWire) {
			t.Errorf("ParseMessage(%q) = %v, want ErrWire", bad, err)
		}
	}
}
