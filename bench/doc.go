// Package bench is securechat's load generator. It drives the real
// transports, handshake, record layer and chat server through loopback
// sockets, as many clients from one process, and reports rates, latencies
// and memory.
//
// The one rule: a figure is reported beside the baseline it is judged
// against, measured in the same run, and every loop is bounded in count
// and in time.
//
// # Scenarios
//
//   - RunThroughput: one session's bulk transfer through the secure channel
//     over TCP and QUIC, beside the raw transports and the single-core speed
//     of AES-256-CBC with HMAC-SHA-256.
//   - RunHandshake: handshakes per second at a fixed concurrency per key
//     exchange group, beside crypto/tls 1.3 full handshakes, and logins per
//     second against a real credstore.
//   - RunFanout: N clients in one room, S of them sending; deliveries,
//     losses and send-to-receive latency.
//   - RunIdle: N logged-in idle connections and what they cost the server.
//
// Throughput and handshakes measure the channel itself and run their own
// listeners in this process. Fan-out and idle runs go to a chat server: one
// StartServer runs in this process or, for a clean view of its memory, as a
// child process ("securechat bench server", see RunServerProcess), or any
// server given as a Target, whose accounts Provision writes.
package bench
