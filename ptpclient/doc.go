// Package ptpclient is the PtP test (peer-to-peer UDP mesh) client; the binary's main package
// replaces this file once the module builds a tool.
package ptpclient
