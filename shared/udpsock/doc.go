// Package udpsock provides UDP sockets for measurement: batched recvmmsg/sendmmsg I/O with
// per-packet kernel timestamps, DSCP/ECN, TTL and error-queue transmit timestamps, without
// allocating per packet.
package udpsock
