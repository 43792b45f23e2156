package sim

import (
	"encoding/json"
	"fmt"
	"os"
)

// Calibration is the set of model parameters measured on a real lab (written by the
// algorithm benchmark, benchmarks/algorithms, to calibration.json; read by `swarmckpt
// sim --calibration FILE`). A zero field (nil DumpStartMs) leaves the Config's value unchanged. Times in
// milliseconds, bandwidth in MB/s (10^6 bytes).
type Calibration struct {
	// Source says where the numbers come from (the run, its date, the machine).
	Source string `json:"source,omitempty"`
	// Hosts and CPUsPerHost describe the lab's machine: its nodes share one host.
	Hosts       int     `json:"hosts,omitempty"`
	CPUsPerHost float64 `json:"cpus_per_host,omitempty"`
	// DiskMBps and DumpOverheadMs: a dump writes its pages at DiskMBps (shared on a host)
	// after DumpOverheadMs of CPU work (shared by the host's CPUs).
	DiskMBps       float64 `json:"disk_mbps,omitempty"`
	DumpOverheadMs float64 `json:"dump_overhead_ms,omitempty"`
	// DumpStartMs: mean delay from the dump command to CRIU seizing a running
	// container (nil: unchanged; 0 is a value: seized at once).
	DumpStartMs *float64 `json:"dump_start_ms,omitempty"`
	// FreezeMs and LockMs: one freeze/thaw and one lock/unlock of a container.
	FreezeMs float64 `json:"freeze_ms,omitempty"`
	LockMs   float64 `json:"lock_ms,omitempty"`
	// LockCPUMs: the CPU time of one lock/unlock on the host's shared cores (Config.LockCPUMs).
	LockCPUMs float64 `json:"lock_cpu_ms,omitempty"`
	// WorkerSlots: how many container actions a node's worker runs at once (Config.WorkerSlots;
	// 0: unchanged).
	WorkerSlots int `json:"worker_slots,omitempty"`
	// NetDelayMs, NetJitterMs, SendCostMs: the control plane (NATS) one-way latency,
	// its spread, and a publisher's time per message.
	NetDelayMs  float64 `json:"net_delay_ms,omitempty"`
	NetJitterMs float64 `json:"net_jitter_ms,omitempty"`
	SendCostMs  float64 `json:"send_cost_ms,omitempty"`
	// PersistMs, CommitCheckMs, ClientMs: see Config.
	PersistMs            float64 `json:"persist_ms,omitempty"`
	CommitCheckMs        float64 `json:"commit_check_ms,omitempty"`
	CommitPerContainerMs float64 `json:"commit_per_container_ms,omitempty"`
	CommitReadMBps       float64 `json:"commit_read_mbps,omitempty"`
	ClientMs             float64 `json:"client_ms,omitempty"`
	// How says, per parameter, how it was measured or fitted.
	How map[string]string `json:"how,omitempty"`
}

// Apply sets cfg's fields from the non-zero fields of c.
func (c Calibration) Apply(cfg *Config) {
	set := func(dst *float64, v float64) {
		if v != 0 {
			*dst = v
		}
	}
	if c.Hosts != 0 {
		cfg.Hosts = c.Hosts
	}
	set(&cfg.CPUsPerHost, c.CPUsPerHost)
	set(&cfg.DiskMBps, c.DiskMBps)
	set(&cfg.DumpOverheadMs, c.DumpOverheadMs)
	if c.DumpStartMs != nil {
		cfg.DumpStartMs = *c.DumpStartMs
	}
	set(&cfg.FreezeMs, c.FreezeMs)
	set(&cfg.LockMs, c.LockMs)
	set(&cfg.LockCPUMs, c.LockCPUMs)
	if c.WorkerSlots != 0 {
		cfg.WorkerSlots = c.WorkerSlots
	}
	set(&cfg.NetDelayMs, c.NetDelayMs)
	set(&cfg.NetJitterMs, c.NetJitterMs)
	set(&cfg.SendCostMs, c.SendCostMs)
	set(&cfg.PersistMs, c.PersistMs)
	set(&cfg.CommitCheckMs, c.CommitCheckMs)
	set(&cfg.CommitPerContainerMs, c.CommitPerContainerMs)
	set(&cfg.CommitReadMBps, c.CommitReadMBps)
	set(&cfg.ClientMs, c.ClientMs)
}

// LoadCalibration reads a calibration file written by the algorithm benchmark.
func LoadCalibration(path string) (Calibration, error) {
	var c Calibration
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("%w: calibration: %w (write one with the algorithm benchmark: go run ./benchmarks/algorithms --replot benchmarks/algorithms/results.json)", ErrConfig, err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%w: calibration %s: %w", ErrConfig, path, err)
	}
	return c, nil
}
