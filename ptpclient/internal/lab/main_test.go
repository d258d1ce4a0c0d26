package lab

import (
	"os"
	"testing"

	"github.com/probekit/probekit/shared/testsupport/gobuild"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}
