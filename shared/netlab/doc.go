// Package netlab builds throw-away network labs from Linux network namespaces for probekit's
// end-to-end tests: a delayed/lossy path, NAT routers of each kind with a STUN server, and TCP
// middleboxes, all torn down again when the test ends.
//
// # Using it from a test
//
// Every constructor has a test form that skips the test (with the reason) when labs cannot be
// built here — not root, no namespaces, iproute2/iptables/tc/ethtool missing — and removes the
// lab in t.Cleanup, pass or fail:
//
//	p := netlab.Path(t, netlab.PathConfig{
//		Out: netlab.Impairment{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond},
//		In:  netlab.Impairment{Delay: 20 * time.Millisecond, Loss: 0.01},
//	})
//	srv, err := p.B.Start("/path/to/stampref", "-l", netlab.PathB.String()+":8620")  // killed at cleanup
//	out, err := p.A.Exec("/path/to/stampsend", netlab.PathB.String())                 // runs to completion
//	err = p.A.Do(func() error { conn, err = net.ListenUDP(...); return err })          // in-process socket in A
//	stop := netlab.StartCapture(t, p.A, "a0", filepath.Join(t.TempDir(), "a0.pcap"), "udp")
//	... traffic ...
//	stop()                                                                             // pcap is complete
//	pkts, err := netlab.ReadCapture(file)                                              // decoded, ns timestamps
//	err = p.Set(netlab.Out, netlab.Impairment{Delay: 30 * time.Millisecond})           // change while running
//
// Non-test code uses NewPath/NewNAT/NewMiddlebox, which return errors, and Close.
// Names are unique per lab (Lab.Prefix = "pk" + 6 hex digits; namespaces Prefix-ROLE; every
// interface lives inside the lab's namespaces), so labs in parallel tests never collide, and the
// root namespace (its links and netfilter rules) is never touched.
//
// # Topologies
//
// Path (lab.md §7 SPP topology): A 10.71.1.1 (a0) — R 10.71.1.254 (ra) / 10.71.2.254 (rb) —
// B 10.71.2.1 (b0), plus fd71:1::1, fd71:2::1. R queues each direction to its own NFQUEUE
// (Out = A→B, In = B→A) served by a delayer, and rate-limits with tbf on the egress interface.
//
// NAT: see NewNAT. Middlebox: see NewMiddlebox.
//
// # The delayer (netem replacement)
//
// This kernel has no netem (lab.md), so R's mangle FORWARD chain sends each direction to an
// NFQUEUE queue read by a delayer: the binary that imports netlab re-executed (DelayerEnv)
// as a separate process at SCHED_FIFO priority, bound to R's namespace. Per direction it applies
// a fixed delay, jitter (uniform ±J or normal σ=J), a delay schedule (steps relative to
// Epoch), FIFO release or free reordering, random loss; rate limits are tbf qdiscs. The delay
// is measured from the packet's kernel receive timestamp. Queues are bound with --queue-bypass,
// so packets flow undelayed only while no delayer is bound (never during a lab's life).
//
// Measured accuracy (captures on R's two interfaces, `scripts/netlab selftest --only
// path/rtt`, 2 cores at load average 6–8 from parallel builds): configured 20 ms → added delay
// min 20.01 ms, median 20.05 ms, p99 20.8 ms; the UDP echo RTT with 20 ms each way has a median
// of 40.4 ms on the wire at A (the echo server's turnaround included). The tail (p99 up to
// +3 ms under heavy load) comes from softirq processing of released packets, which runs at
// normal priority.
//
// # Captures
//
// Host.StartCapture / StartCapture run tcpdump (-U --immediate-mode, nanosecond pcap) on a lab
// interface; all namespaces share one clock, so two captures give exact one-way delays.
// ReadCapture decodes them. Offloads (TSO/GSO/GRO, checksum) are off on every lab interface,
// so captures show wire segments with correct checksums.
package netlab
