// Package ptpserver is the PtP test (peer-to-peer UDP mesh) rendezvous server; the binary's
// main package replaces this file once the module builds a tool.
package ptpserver
