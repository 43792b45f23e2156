// Package nodecall is the coordinator's one way of asking a node agent something:
// a request on an operation's subject (protocol/node), its typed reply decoded, and
// the agent's error returned as the contract's typed error (errors.Is matches
// node.ErrNoSuchSet, node.ErrNotFound, ...). The coordinator and coordinator/restore
// both use it.
package nodecall
