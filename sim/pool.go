package sim

import "math"

// pool is a processor-sharing server: the jobs in it share its capacity equally, each
// at most perJob units per microsecond. A host's disk is a pool of bytes (no per-job
// cap); its CPUs are a pool of CPU-microseconds (capacity = cores, at most one core per
// job), so N dumps on a host with C cores each progress at min(1, C/N).
type pool struct {
	capacity float64 // units per microsecond
	perJob   float64 // units per microsecond for one job (math.Inf(1): no cap)
	jobs     []poolJob
	last     Time
	version  int64
}

type poolJob struct {
	container int32
	remaining float64
	token     int32 // the proc generation that started it
	lock      bool  // a lock or unlock (Config.LockCPUMs), not a dump's fixed cost
}

// rate is what each job gets now.
func (p *pool) rate() float64 {
	if len(p.jobs) == 0 {
		return 0
	}
	return math.Min(p.perJob, p.capacity/float64(len(p.jobs)))
}

// progress advances the jobs to now.
func (p *pool) progress(now Time) {
	if len(p.jobs) > 0 {
		share := p.rate() * float64(now-p.last)
		for i := range p.jobs {
			p.jobs[i].remaining -= share
		}
	}
	p.last = now
}

// next returns when the next job finishes, if any (call after progress).
func (p *pool) next(now Time) (Time, bool) {
	if len(p.jobs) == 0 {
		return 0, false
	}
	least := math.Inf(1)
	for _, j := range p.jobs {
		least = math.Min(least, j.remaining)
	}
	least = max(least, 0)
	return now + Time(math.Ceil(least/p.rate())), true
}

// finished removes and returns the jobs done by now (call after progress).
func (p *pool) finished() []poolJob {
	var done []poolJob
	kept := p.jobs[:0]
	for _, j := range p.jobs {
		if j.remaining <= 0.5 {
			done = append(done, j)
		} else {
			kept = append(kept, j)
		}
	}
	p.jobs = kept
	return done
}

// drop removes the jobs of the containers for which gone reports true.
func (p *pool) drop(gone func(c int32) bool) {
	kept := p.jobs[:0]
	for _, j := range p.jobs {
		if !gone(j.container) {
			kept = append(kept, j)
		}
	}
	p.jobs = kept
}
