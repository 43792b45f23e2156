package sim

import (
	"fmt"
	"math/rand/v2"
)

// Graph names a communication graph between containers.
type Graph string

// Communication graphs.
const (
	// Ring: container i talks to i+1 (mod N), both ways.
	Ring Graph = "ring"
	// AllToAll: every pair talks, both ways, up to AllToAllMax containers. Above that the
	// graph is degree-bounded (see Config.AllToAllMax): container i talks to i±2^k for
	// k = 0..log2(AllToAllDegree)-1, a circulant graph of degree AllToAllDegree and
	// diameter O(log N), so a 10,000-container run stays linear in N.
	AllToAll Graph = "all-to-all"
	// Tiers: client/server tiers. Half the containers are clients, 30% application
	// servers, 20% databases; each client talks to 2 app servers and each app server to 2
	// databases, request bytes down and (smaller) response bytes up.
	Tiers Graph = "tiers"
	// Pipeline: PipelineStages stages of equal width; member j of stage s sends to
	// members j and j+1 of stage s+1. Bytes flow forward only.
	Pipeline Graph = "pipeline"
	// Star: container 0 (a server) talks to every other container (its clients), both
	// ways: the lab's echo stacks (fan-in, scale-N). With Config.StarSize, containers
	// form stars of that size instead (container k x StarSize serves the next
	// StarSize-1).
	Star Graph = "star"
)

// Graphs lists every graph, for flags and tests.
var Graphs = []Graph{Ring, AllToAll, Tiers, Pipeline, Star}

// edge is one connection between two containers. Rates are bytes per millisecond of
// running time of the sender in each direction (u->v, v->u).
type edge struct {
	u, v   int32
	rateUV float64
	rateVU float64
}

// buildGraph returns the connections of g over n containers.
func buildGraph(g Graph, n int, cfg *Config, rng *rand.Rand) ([]edge, error) {
	rate := cfg.TrafficBytesPerMs
	jitter := func() float64 { return rate * (0.5 + rng.Float64()) }
	var es []edge
	add := func(u, v int, uv, vu float64) {
		if u == v {
			return
		}
		es = append(es, edge{u: int32(u), v: int32(v), rateUV: uv, rateVU: vu})
	}
	switch g {
	case Ring:
		if n == 2 {
			add(0, 1, jitter(), jitter())
			break
		}
		for i := 0; i < n && n > 2; i++ {
			add(i, (i+1)%n, jitter(), jitter())
		}
	case AllToAll:
		if n <= cfg.AllToAllMax {
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					add(i, j, jitter(), jitter())
				}
			}
			break
		}
		seen := map[int]bool{}
		for k := 0; k < cfg.AllToAllDegree/2; k++ {
			off := (1 << k) % n
			if off == 0 || seen[off] || seen[n-off] {
				continue
			}
			seen[off] = true
			for i := 0; i < n; i++ {
				if 2*off == n && i >= off {
					continue // i+n/2 and i-n/2 are the same peer: add once
				}
				add(i, (i+off)%n, jitter(), jitter())
			}
		}
	case Star:
		size := cfg.StarSize
		if size < 2 {
			size = n
		}
		for i := 0; i < n; i++ {
			if hub := i - i%size; hub != i {
				add(hub, i, jitter(), jitter())
			}
		}
	case Tiers:
		clients := n / 2
		apps := n * 3 / 10
		if apps == 0 {
			apps = 1
		}
		dbs := n - clients - apps
		if dbs <= 0 || clients <= 0 {
			return nil, fmt.Errorf("sim: graph %s needs at least 3 containers, got %d", g, n)
		}
		for i := 0; i < clients; i++ {
			a1 := clients + i%apps
			add(i, a1, jitter(), jitter()/4)
			if a2 := clients + (i+1)%apps; apps > 1 && a2 != a1 {
				add(i, a2, jitter(), jitter()/4)
			}
		}
		for a := 0; a < apps; a++ {
			d1 := clients + apps + a%dbs
			add(clients+a, d1, jitter(), jitter()/4)
			if d2 := clients + apps + (a+1)%dbs; dbs > 1 && d2 != d1 {
				add(clients+a, d2, jitter(), jitter()/4)
			}
		}
	case Pipeline:
		stages := cfg.PipelineStages
		if stages > n {
			stages = n
		}
		if stages < 2 {
			return nil, fmt.Errorf("sim: graph %s needs at least 2 containers, got %d", g, n)
		}
		w := n / stages
		for s := 0; s+1 < stages; s++ {
			for j := 0; j < w; j++ {
				add(s*w+j, (s+1)*w+j, jitter(), 0)
				if w > 1 {
					add(s*w+j, (s+1)*w+(j+1)%w, jitter(), 0)
				}
			}
		}
		// Leftover containers (n not a multiple of stages) feed the first stage.
		for i := stages * w; i < n; i++ {
			add(i, i%w, jitter(), 0)
		}
	default:
		return nil, fmt.Errorf("sim: unknown graph %q (want one of %v)", g, Graphs)
	}
	if cfg.IdleFraction > 0 {
		for i := range es {
			if rng.Float64() < cfg.IdleFraction {
				es[i].rateUV, es[i].rateVU = 0, 0
			}
		}
	}
	return es, nil
}
