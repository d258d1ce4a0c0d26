// Package lab holds spp's end-to-end tests in the netlab path topology: fresh traffic with
// known injected delays, captures at both points on one clock as the truth, and the real
// spp binary run on files, on live interfaces and as a remote master/slave pair.
package lab
