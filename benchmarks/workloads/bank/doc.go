// Command bank is the textbook workload for snapshot algorithms: K account holders, one
// process (container) each, moving money to each other over long-lived TCP connections.
// The total is invariant, so a wrong cut shows up as money created or destroyed.
//
//	bank holder --id I (or env BANK_ID) --count K (--peers h1:9000,h2:9000,... | --service NAME)
//	            [--initial 1000] [--interval 20ms] [--max-amount 10] [--listen :9000] [--http :8080]
//	bank query  (--holders h1:8080,... | --service NAME) [--count K] [--settle 5s] [--no-pause] [--connected] [--json]
//	bank get URL...               # probe helper for scratch images
//
// Protocol (one TCP connection per pair of holders, dialed by the lower id, never
// replaced while it works; lines of text):
//
//	HELLO <id> <count> <initial>   both ways, once, when a connection opens
//	T <seq> <amount>               a transfer; the sender debits when it sends
//	A <seq> <cumulative>           ack: total amount received so far on this channel
//
// The receiver credits on receipt. So at any instant
//
//	K*initial = sum(balances) + sum over channels A->B of (sent_A_to_B - received_B_from_A)
//
// and each holder's /state carries its per-peer sent and received totals, from which
// the query computes every channel's in-flight money. A channel with received > sent
// means money was created (an orphan message: the receiver's state records a message
// the sender's state never sent); money that stays in flight once sending is paused
// and the channels had time to drain was destroyed (a lost message). Transfers also
// carry per-channel sequence numbers, and a holder counts any gap or repeat it receives.
// With --service NAME and --count K the query first waits (up to --settle) for NAME to
// resolve to K holders: swarm's DNS can lag behind the tasks of other nodes right after
// a restore, and the holders it does not know yet would be reported as not answering.
// For the same reason a holder that does not answer is asked again (every 250 ms) until
// --settle passes: the query's own new container may reach another node's tasks only
// seconds later. Either wait is printed ("note: ...").
//
// Holder endpoints (on --http): GET /state -> JSON State; GET|POST /pause[?for=60s] and
// /resume (stop / restart initiating transfers; receiving and acking go on; a pause is a
// lease that ends by itself after ?for, default 60s); GET /healthz -> 200
// when connected to all K-1 peers with no sequence anomaly, else 503.
package main
