// Package coord holds what every coordinator role shares: request validation and the
// one-snapshot-at-a-time rule, epochs, the timeout, the persisted record, the decision
// (commit/abort exactly once, then release every container) and recovery from a record.
// Each algorithm package embeds Base and adds its phases.
package coord
