// Command echo is a client/server pair over ONE long-lived TCP connection, the smallest
// workload whose correctness depends on in-flight TCP state surviving a checkpoint.
//
//	echo server [--listen :7000] [--http :8080]
//	echo client --connect HOST:7000 [--interval 10ms] [--size 0] [--http :8080]
//	echo get URL...               # probe helper for scratch images
//
// Wire format: the client sends lines "<seq> <payload>\n" with seq = 1, 2, 3, ...; the
// server writes every line back unchanged. The client checks each reply's seq (see
// Checker): a reply that skips numbers is a gap, one it has already seen a duplicate, one
// it never sent a phantom. If the connection breaks the client dials again and counts a
// reconnect; messages left unanswered on the broken connection are counted as lost.
// Dial failures before the first connection are retried silently (the server may start
// later) and are not reconnects.
//
// Client endpoints (on --http): GET /status -> JSON Status; GET /healthz -> 200 "ok" when
// connected, replies flowing and no gap/duplicate/phantom/reconnect ever seen, else 503
// with the reasons. Server endpoints: GET /status -> JSON with its connections;
// GET /healthz -> 200.
package main
