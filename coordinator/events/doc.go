// Package events is the coordinator's event stream: what it decides and does on its
// own, outside any one operation's progress (docs/drain.md, "Events"): a drain seen, a
// stop held by the runtime wrapper, a task checkpointed and restored on another node, a
// hold that timed out (and why), a node lost, a stack rolled back to a snapshot, a
// stack's label errors, a snapshot committed or aborted.
//
// The emitting side is one small interface, Publisher (Publish(ctx, Event)), so that
// every controller (drain, node loss, policy) emits the same way. Implementations:
//
//	Bus      publishes each event as JSON on Subject (NATS: swarmckpt.v1.events)
//	Logged   writes each event to the coordinator's slog log, then passes it on
//	Recorder an in-memory fake that keeps the events (tests)
//
// eventstest.Publisher is the conformance suite both Bus (over the in-memory bus and
// NATS) and Recorder pass. Follow is the reading side (`swarmckpt events`): it calls a
// function for each event published on Subject until its subscription ends. The
// stream is live: an event published while nobody follows is not kept.
package events
