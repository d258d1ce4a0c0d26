// Package tcpexpose is the TCP middlebox exposure tester; the binary's main package replaces
// this file once the module builds a tool.
package tcpexpose
