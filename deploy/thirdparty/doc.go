// Package thirdparty tries swarmckpt on real third-party server software that is not part
// of this repository: Debian's redis-server (and redis-cli), memcached and busybox, packed
// into images by build.sh (make images-thirdparty) with mkthirdparty. Its integration test
// deploys deploy/examples/redis.yml on a 3-node lab and drives the real CLI through
// snapshot (blocking, chandy-lamport), inspect --verify, restore on other nodes and migrate,
// checking that the in-memory dataset and the long-lived client connections survive.
// See docs/operations.md, "Third-party software".
package thirdparty
