package main

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ChunkSize is the unit of rewriting: one page.
const ChunkSize = 4096

// ErrSize is returned for a memory size that cannot be held.
var ErrSize = errors.New("memhog: bad size")

// Memory is the pure core of memhog: a buffer whose content is a deterministic function
// of (size, seed, writes). Not safe for concurrent use.
type Memory struct {
	buf    []byte
	seed   uint64
	writes uint64 // chunk rewrites done since start
}

// NewMemory allocates mib MiB and writes generation 0 into every chunk, touching every
// page.
func NewMemory(mib int, seed uint64) (*Memory, error) {
	if mib <= 0 || mib > 1<<20 {
		return nil, fmt.Errorf("%w: --mib %d, want 1..1048576", ErrSize, mib)
	}
	m := &Memory{buf: make([]byte, mib<<20), seed: seed}
	for i := 0; i < m.Chunks(); i++ {
		fillChunk(m.chunk(i), seed, uint64(i), 0)
	}
	return m, nil
}

// Chunks is the number of chunks.
func (m *Memory) Chunks() int { return len(m.buf) / ChunkSize }

// Writes is the number of chunk rewrites done so far.
func (m *Memory) Writes() uint64 { return m.writes }

// MiB is the size.
func (m *Memory) MiB() int { return len(m.buf) >> 20 }

func (m *Memory) chunk(i int) []byte { return m.buf[i*ChunkSize : (i+1)*ChunkSize] }

// WriteNext rewrites the next n chunks, round robin, each with its next generation.
func (m *Memory) WriteNext(n int) {
	c := uint64(m.Chunks())
	for k := 0; k < n; k++ {
		i := m.writes % c
		gen := m.writes/c + 1
		fillChunk(m.chunk(int(i)), m.seed, i, gen)
		m.writes++
	}
}

// Checksum is the sha256 of the whole buffer.
func (m *Memory) Checksum() [sha256.Size]byte { return sha256.Sum256(m.buf) }

// Verify compares every chunk with the content it must have after Writes() rewrites
// and returns the indexes of the chunks that differ (nil when all match).
func (m *Memory) Verify() []int {
	var bad []int
	want := make([]byte, ChunkSize)
	c := uint64(m.Chunks())
	for i := uint64(0); i < c; i++ {
		fillChunk(want, m.seed, i, Generation(m.writes, c, i))
		if string(want) != string(m.chunk(int(i))) {
			bad = append(bad, int(i))
		}
	}
	return bad
}

// Generation is the generation of chunk i of c chunks after writes round-robin rewrites.
func Generation(writes, c, i uint64) uint64 {
	g := writes / c
	if i < writes%c {
		g++
	}
	return g
}

// ExpectedChecksum computes, without holding the memory, the checksum a Memory of mib
// MiB with this seed has after writes rewrites.
func ExpectedChecksum(mib int, seed, writes uint64) [sha256.Size]byte {
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	c := uint64(mib << 20 / ChunkSize)
	for i := uint64(0); i < c; i++ {
		fillChunk(buf, seed, i, Generation(writes, c, i))
		h.Write(buf)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// fillChunk writes the content of chunk i at generation gen: a splitmix64 stream seeded
// from (seed, i, gen).
func fillChunk(dst []byte, seed, i, gen uint64) {
	s := seed ^ (i+1)*0x9e3779b97f4a7c15 ^ (gen+1)*0xc2b2ae3d27d4eb4f
	for off := 0; off+8 <= len(dst); off += 8 {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(dst[off:], z^z>>31)
	}
}
