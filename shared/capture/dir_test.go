package capture

import (
	"flag"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

var captureDir = flag.String("capture.dir", "", "also compare every pcap/pcapng under this directory with tcpdump -r (e.g. /work/shared/data)")

// TestCaptureDirMatchesTcpdump checks a whole directory of captures, such as the shared data
// set including its large files that are not copied into testdata:
//
//	go test -run CaptureDir -capture.dir /work/shared/data ./shared/capture
func TestCaptureDirMatchesTcpdump(t *testing.T) {
	if *captureDir == "" {
		t.Skip("no -capture.dir given")
	}
	n := 0
	err := filepath.WalkDir(*captureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".pcap") || strings.HasSuffix(path, ".pcapng")) {
			return err
		}
		n++
		t.Run(strings.TrimPrefix(path, *captureDir), func(t *testing.T) {
			compareWithPcapgo(t, path)
			t.Logf("%s: %d packets, same count and timestamps as tcpdump", path, compareWithTcpdump(t, path))
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no captures under %s", *captureDir)
	}
}
