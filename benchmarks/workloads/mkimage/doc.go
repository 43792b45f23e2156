// Command mkimage writes a `docker load`-able image archive (the docker-save format:
// manifest.json, one config JSON, one layer tar) holding a single static binary, with
// no Docker daemon and no registry. The output is deterministic: the same binary and
// flags give the same bytes, so the image ID (the config's sha256) is stable.
//
//	mkimage --binary build/workloads/bin/counter --tag swarmckpt/counter:dev \
//	        --out build/workloads/counter.tar [--entrypoint /counter] [--expose 8080/tcp,...]
//
// The image is FROM scratch: its only file is the binary at /<name>, mode 0755, owned by
// root, and its ENTRYPOINT is ["/<name>"].
package main
