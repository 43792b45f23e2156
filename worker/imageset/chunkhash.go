package imageset

import (
	"hash"
	"sync"
)

// ChunkHasher hashes chunks of data on a goroutine of its own, so that the goroutine
// moving the data (reading a file and sending it, or receiving and writing it) goes on
// with the next chunk while the previous one is hashed: on two cores the sha256 no
// longer adds to the transfer's critical path. Chunks come from a fixed pool of
// buffers, so memory stays bounded; chunks are hashed in the order they were queued.
type ChunkHasher struct {
	jobs    chan chunkJob
	free    chan []byte
	pending sync.WaitGroup
	closed  sync.Once
}

type chunkJob struct {
	h hash.Hash
	b []byte
}

// NewChunkHasher starts a hasher with n buffers of size bytes. Close stops it.
func NewChunkHasher(n, size int) *ChunkHasher {
	c := &ChunkHasher{jobs: make(chan chunkJob, n), free: make(chan []byte, n)}
	for range n {
		c.free <- make([]byte, size)
	}
	go func() {
		for j := range c.jobs {
			j.h.Write(j.b)
			c.free <- j.b[:cap(j.b)]
			c.pending.Done()
		}
	}()
	return c
}

// Buffer returns a free buffer (waiting for one if all are queued). Give it back with
// Hash, or with Release when it is not to be hashed.
func (c *ChunkHasher) Buffer() []byte { return <-c.free }

// Release returns an unused buffer to the pool.
func (c *ChunkHasher) Release(b []byte) { c.free <- b[:cap(b)] }

// Hash queues b (a slice of a buffer from Buffer) to be written to h; the buffer
// returns to the pool once hashed. The caller may read b meanwhile, never write it.
func (c *ChunkHasher) Hash(h hash.Hash, b []byte) {
	c.pending.Add(1)
	c.jobs <- chunkJob{h, b}
}

// Wait returns when every queued chunk was hashed (before h.Sum or h.Reset).
func (c *ChunkHasher) Wait() { c.pending.Wait() }

// Close waits for the queued chunks and stops the goroutine.
func (c *ChunkHasher) Close() {
	c.closed.Do(func() {
		c.Wait()
		close(c.jobs)
	})
}
