// Package netlab builds throw-away network labs from Linux network namespaces for probekit's
// end-to-end tests: a delayed, lossy, rate-limited path; NAT routers of each kind with a STUN
// server; TCP middleboxes — all removed again when the test ends, pass or fail.
//
// # Using it from a test
//
// Each topology has a test form in package shared/testsupport/labtest (test-only, so this
// package does not import "testing") that skips the test (with the reason) when labs cannot be
// built here — not root, no namespaces, iproute2/iptables/tc/ethtool (and for NAT nft/coturn)
// missing — and removes the lab in t.Cleanup:
//
//	p := labtest.Path(t, netlab.PathConfig{
//		Out: netlab.Impairment{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond},
//		In:  netlab.Impairment{Delay: 20 * time.Millisecond, Loss: 0.01},
//	})
//	srv, err := p.B.Start(bin, "-l", netlab.PathB.String()+":8620") // background; stopped at cleanup
//	out, err := p.A.Exec(bin, netlab.PathB.String())                // to completion, combined output
//	cmd := p.A.Command(ctx, bin, args...)                           // an *exec.Cmd in A's namespace
//	err = p.A.Do(func() error { c, err = net.ListenUDP(...); return err }) // a socket in A, in-process
//	stop := labtest.StartCapture(t, p.A, "a0", file, "udp port 8620")      // tcpdump, ns timestamps
//	stop()                                                                   // pcap complete
//	pkts, err := netlab.ReadCapture(file)                                    // decoded packets
//	err = p.Set(netlab.Out, netlab.Impairment{Delay: 30 * time.Millisecond}) // change while running
//	st, err := p.Stats(netlab.Out)                                           // delayer counters
//
//	n := labtest.NAT(t, netlab.NATConfig{STUN: true, NATs: []netlab.NATSpec{
//		{Kind: netlab.FullCone, Clients: 2, Hairpin: true}, {Kind: netlab.Symmetric}}})
//	n.NATs[1].Clients[0].Exec(bin, "-s", netlab.Rendezvous.String())  // client behind the symmetric NAT
//	n.Rendezvous.Start(server)                                          // public rendezvous host
//
//	m := labtest.Middlebox(t, netlab.MiddleboxConfig{Mode: netlab.ModeStripOptions})
//	err = m.SetMode(netlab.ModeSYNProxy)                                // switch modes in one lab
//	err = m.Client.SendSYN(src, dst, seq, win, netlab.ProbeSYNOptions()) // crafted SYN, kind 253
//
// Non-test code (scripts/netlab) uses NewPath, NewNAT and NewMiddlebox, which return errors,
// and Close. Every lab gets a unique prefix (Lab.Prefix, "pk" + 6 hex digits; namespaces are
// Prefix-ROLE) and creates every interface inside its own namespaces, so labs of parallel tests
// never collide and nothing is added to the root namespace. Close kills what the lab started
// (and anything else still running inside its namespaces), then deletes the namespaces, which
// takes their interfaces, qdiscs and netfilter rules with them. A marker in StateDir names the
// owning PID; the first lab a process builds removes labs whose owner died (a test binary killed
// by a timeout), and `scripts/netlab clean` does the same by hand.
//
// # Topologies
//
// Path (lab.md §7 SPP topology): A 10.71.1.1 (a0) — R 10.71.1.254 (ra) / 10.71.2.254 (rb) —
// B 10.71.2.1 (b0), plus IPv6 fd71:1::1, fd71:1::254 / fd71:2::254, fd71:2::1. R sends each
// forwarded packet of a direction (Out = A→B, In = B→A) through its own NFQUEUE to the delayer,
// then through a tbf qdisc on the egress interface when a rate is set. Neighbours are static
// (no ARP/ND delay or drop on the first packets).
//
// NAT: a public segment 45.71.0.0/24 (bridge br0 in namespace "pub"; a prefix that exists only
// inside the lab and is not reserved, so miniupnpd accepts it) with the STUN host (coturn
// on STUNAddr1 and STUNAddr2, ports 3478/3479, RFC 5780 behaviour discovery) and the rendezvous
// host (Rendezvous, 45.71.0.10); router i has WAN 45.71.0.(101+i) and LAN 10.0.(i+1).0/24 with
// clients at .2, .3, … on a bridge. Kinds: FullCone (EIM + EIF), AddressRestricted (EIM + ADF),
// PortRestricted (EIM + APDF), Symmetric (APDM + APDF, MASQUERADE fully-random); Hairpin per
// router. Each client owns an ephemeral port range (NATClient.Ports, 20000–29999 for the first,
// 30000–39999 for the second, …), which the EIM routers keep as the public port; bind explicit
// ports inside it. NATSpec.UPnP runs miniupnpd (UPnP IGD + NAT-PMP; Debian miniupnpd-nftables)
// on a router; NATSpec.UDPTimeout shortens idle UDP mappings (keepalive tests). coturn's
// turnutils_natdiscovery classifies every kind as intended (self test).
//
// Middlebox (lab.md §7): client 10.199.1.2 (c0) — router 10.199.1.1 (mc) / 10.199.2.1 (ms) —
// server 10.199.2.2 (s0), plus fd99:1::/64, fd99:2::/64. Modes: ModeTransparent,
// ModeStripOptions (TCPOPTSTRIP, kinds configurable, default 253), ModeClampMSS (TCPMSS, default
// 536), ModeNAT (MASQUERADE --random-fully: source port rewritten; Linux never changes the ISN),
// ModeSYNProxy (SYNPROXY: the router answers the handshake with window 0 and a cookie ISN and
// opens the server connection after the client's ACK), ModeProxy (REDIRECT of port 80 to a socat
// relay on the router: a separate server-side connection from 10.199.2.1). Verdicts tcpexpose
// should reach per mode: tcpexpose.md §4.
//
// Offloads (TSO, GSO, GRO, checksum) are off on every lab veth, so captures show wire segments
// with correct checksums.
//
// # The delayer (netem replacement)
//
// This kernel has no netem (lab.md §1), so R's mangle FORWARD chain queues each direction to its
// own NFQUEUE (queues 1 and 2, --queue-bypass) and a delayer releases the packets: the binary
// that imports netlab, re-executed with DelayerEnv set, as a separate process at SCHED_FIFO
// priority 20 bound to R's namespace. Per direction: a fixed delay; jitter, uniform in ±Jitter
// or normal with σ = Jitter (never below zero); a schedule of delay steps relative to Epoch;
// FIFO release (a packet never overtakes its predecessor; jittered packets bunch) or free
// reordering; random loss; tbf rate limits. Each delay counts from the packet's kernel receive
// timestamp, which removes the queue-to-user-space latency. A real-time process is needed: run
// in-process under `go test -race` at load average 13 on 2 cores, the delayer added +1.7 ms to
// the median and up to 60 ms to single packets.
//
// Measured (captures on R's two interfaces and on a0; `scripts/netlab selftest`, 2 cores at
// load average 12–17 from parallel builds): configured 20 ms → added delay min 20.00–20.02 ms,
// median 20.03–20.13 ms, p99 20.4–22 ms; the UDP echo RTT with 20 ms each way, on the wire at
// A, has a median of 40.22–40.28 ms (B's echo turnaround included) and the echo client sees
// 40.26–40.34 ms. The 10 → 30 ms schedule step shows from the probe sent 0.2–2 ms after the
// step. Under that load about 1 % of packets can still be held 10–100 ms more: the kernel
// defers R's receive processing (softirq) to ksoftirqd, a normal-priority thread, and the
// packet reaches the queue late (its receive timestamp, and so a capture on R's ingress, is
// taken before the deferral). Medians are unaffected; compare a tool against captures (which
// see the same delays), not against the configured value, when tails matter. The delayer took
// 30,000 packets at 5,500 packets/s (sender-limited) without a drop, receiving each within
// 3.4 ms of its arrival. Every forwarded packet passes through it, even with no impairment
// set (so Set works at any time); tests that need more than a few thousand packets per second
// through R should check Stats and QueueDrops. Its queue holds 65,536 packets per direction; beyond that the kernel
// drops (counted in R's /proc/net/netfilter/nfnetlink_queue).
//
// # Captures
//
// Host.StartCapture / StartCapture run tcpdump (-U --immediate-mode, 32 MiB buffer, nanosecond
// pcap, Ethernet link type) on a lab interface and return once it listens; Stop fails if the
// kernel dropped packets. All namespaces share one clock, so two captures give exact one-way
// delays. ReadCapture decodes a capture with gopacket.
//
// # Self test
//
// Selftest (`scripts/netlab selftest`, run by `make test` as root) builds every topology and
// proves it with independent tools — tcpdump captures and coturn's turnutils_natdiscovery —
// printing one line per check and "N passed, N failed".
package netlab
