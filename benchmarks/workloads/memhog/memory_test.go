package main

import (
	"errors"
	"testing"
)

func TestChecksumDeterministic(t *testing.T) {
	a, err := NewMemory(2, 42)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewMemory(2, 42)
	if a.Checksum() != b.Checksum() {
		t.Fatal("two memories with the same size and seed differ at start")
	}
	a.WriteNext(700)
	b.WriteNext(300)
	if a.Checksum() == b.Checksum() {
		t.Fatal("memories after 700 and 300 rewrites have the same checksum")
	}
	b.WriteNext(400)
	if a.Checksum() != b.Checksum() {
		t.Fatal("same number of rewrites (700 vs 300+400) gave different checksums")
	}
	if got, want := a.Checksum(), ExpectedChecksum(2, 42, 700); got != want {
		t.Fatalf("Checksum %x != ExpectedChecksum %x", got, want)
	}
	c, _ := NewMemory(2, 43)
	if c.Checksum() == ExpectedChecksum(2, 42, 0) {
		t.Fatal("different seeds give the same checksum")
	}
}

func TestRewriteChangesContentAndWraps(t *testing.T) {
	m, _ := NewMemory(1, 7) // 256 chunks
	start := m.Checksum()
	m.WriteNext(m.Chunks()) // one full generation
	if m.Checksum() == start {
		t.Fatal("a full pass of rewrites left the memory unchanged")
	}
	if g := Generation(m.Writes(), uint64(m.Chunks()), 0); g != 1 {
		t.Fatalf("generation after one pass = %d, want 1", g)
	}
	m.WriteNext(10)
	if g := Generation(m.Writes(), uint64(m.Chunks()), 9); g != 2 {
		t.Fatalf("chunk 9 generation = %d, want 2", g)
	}
	if g := Generation(m.Writes(), uint64(m.Chunks()), 10); g != 1 {
		t.Fatalf("chunk 10 generation = %d, want 1", g)
	}
	if bad := m.Verify(); bad != nil {
		t.Fatalf("Verify on untouched-by-others memory found bad chunks %v", bad)
	}
}

func TestVerifyDetectsCorruption(t *testing.T) {
	m, _ := NewMemory(1, 7)
	m.WriteNext(300)
	m.buf[5*ChunkSize+17] ^= 1
	m.buf[200*ChunkSize] ^= 0x80
	bad := m.Verify()
	if len(bad) != 2 || bad[0] != 5 || bad[1] != 200 {
		t.Fatalf("Verify = %v, want [5 200]", bad)
	}
	before := m.Checksum()
	m.buf[5*ChunkSize+17] ^= 1
	if m.Checksum() == before {
		t.Fatal("a one-bit change did not change the checksum")
	}
}

func TestNewMemoryRejectsBadSize(t *testing.T) {
	for _, mib := range []int{0, -1} {
		if _, err := NewMemory(mib, 1); !errors.Is(err, ErrSize) {
			t.Errorf("NewMemory(%d) error = %v, want ErrSize", mib, err)
		}
	}
}
