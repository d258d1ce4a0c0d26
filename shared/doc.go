// Package shared is the root of the probekit shared library; the packages below it hold
// everything two or more tools need alike (timestamps, checksums, capture, sockets, stats, CLI).
package shared
