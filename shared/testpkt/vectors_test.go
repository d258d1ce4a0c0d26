package testpkt

import (
	"testing"

	"github.com/probekit/probekit/shared/testpkt/stampvectors"
)

// interopKey is the HMAC key of the teaparty vectors and the stamp-suite authenticated capture.
const interopKey = stampvectors.InteropKey

func loadTeaparty(t testing.TB) stampvectors.Teaparty {
	t.Helper()
	v, err := stampvectors.LoadTeaparty()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadCaptures(t testing.TB) map[string][]stampvectors.Frame {
	t.Helper()
	c, err := stampvectors.LoadCaptures()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
