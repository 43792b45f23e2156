// Command memhog holds a block of memory, keeps rewriting part of it, and reports a
// checksum of it, so a restore can be proven byte-identical.
//
//	memhog [--mib 64] [--dirty-fraction 0.1] [--seed 1] [--tick 100ms] [--listen :8080] [--progress 10s]
//	memhog get URL...             # probe helper for scratch images
//
// Memory layout: --mib MiB split into 4 KiB chunks (one page each). At start every chunk
// is written (all pages touched) with generation-0 content. Each second the writer
// rewrites dirty-fraction of all chunks, round robin, each time with the chunk's next
// generation; a chunk's content is a deterministic pseudo-random function of (seed,
// chunk index, generation). So the whole memory is a function of (mib, seed, writes),
// where writes counts chunk rewrites: /verify recomputes it and compares.
//
// Endpoints:
//
//	GET /checksum  JSON {sha256, writes, mib, seed, paused, hash_ms}; the writer is
//	               paused while hashing, so the value matches the memory at `writes`.
//	GET /verify    recompute the expected content from (seed, writes) and compare every
//	               chunk: 200 JSON {ok:true} or 500 JSON {ok:false, bad_chunks, ...}.
//	GET|POST /pause, /resume   stop / restart the writer (JSON {paused, writes}).
//	GET /stats     JSON {mib, dirty_fraction, writes, generation, paused, instance, ...}.
//	GET /healthz   200 "ok".
//
// Proving a restore byte-identical: /pause, /checksum (A), checkpoint, restore,
// /checksum (B), /resume; identical iff A == B (same sha256 and same writes). With the
// writer running, /verify after restore still proves the memory is exactly what the
// process's own counters say it must be.
package main
