package imageset_test

import (
	"crypto/sha256"
	"math/rand/v2"
	"testing"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// TestChunkHasherKeepsOrder: chunks queued for two hashes come out as if each had been
// hashed in one piece, and buffers are reused (the pool is smaller than the data).
func TestChunkHasherKeepsOrder(t *testing.T) {
	c := imageset.NewChunkHasher(2, 4096)
	defer c.Close()
	r := rand.New(rand.NewPCG(1, 2))
	h1, h2 := sha256.New(), sha256.New()
	var all1, all2 []byte
	for i := 0; i < 200; i++ {
		b := c.Buffer()
		n := 1 + r.IntN(len(b))
		for j := range n {
			b[j] = byte(r.Uint32())
		}
		if i%3 == 0 {
			all2 = append(all2, b[:n]...)
			c.Hash(h2, b[:n])
		} else {
			all1 = append(all1, b[:n]...)
			c.Hash(h1, b[:n])
		}
	}
	c.Wait()
	if w1, w2 := sha256.Sum256(all1), sha256.Sum256(all2); string(h1.Sum(nil)) != string(w1[:]) || string(h2.Sum(nil)) != string(w2[:]) {
		t.Fatal("digests of chunks hashed in the background differ from the digests of the data")
	}
}
