// Package migrate holds the decisions of the migration modes that depend on the kernel
// and CRIU: whether pre-copy (iterative pre-dump, needs soft-dirty memory tracking) and
// post-copy (lazy pages over userfaultfd) can run on a node, and the pure planning
// logic of pre-copy's iterations, tested without the kernel feature.
//
// Pre-copy loop (RunPreCopy, deciding with NextRound): pre-dump while the container
// runs, each iteration writing only pages dirtied since the previous one
// (--parent-path, imageset.PreDumpPath's layout), until the
// dirty set is small enough or stops shrinking, then a final dump with the container
// stopped:
//
//	predump#1 (all pages) ─▶ predump#k (dirty since k-1) ─▶ ... ─▶ final dump (frozen)
//	   stop when: dirty <= Threshold, or dirty > Shrink * previous, or k == MaxIters
package migrate
