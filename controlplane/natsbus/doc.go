// Package natsbus implements bus.Transport over a real NATS connection (nats.go), with
// the credentials swarmckpt supports for control traffic: a token, a user and
// password, and TLS (custom CA, client certificate). Subscribe returns only once the
// server has the subscription, so a request sent right after finds it.
package natsbus
