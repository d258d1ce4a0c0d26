package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpclient/internal/testbin"
)

// TestTmux runs ptpclient on a real terminal (tmux): the original's screen appears, q quits,
// SHUTDOWN goes out and the report is printed after the screen is restored.
func TestTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux not installed")
	}
	srvBin, cliBin := testbin.Build(t, "ptpserver"), testbin.Build(t, "ptpclient")
	port := strconv.Itoa(freePort(t))
	srv := exec.Command(srvBin, "-s", "127.0.0.1", "-p", port, "--no-tui", "--duration", "30s")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	session := fmt.Sprintf("ptpclient-test-%d", os.Getpid())
	exitFile := filepath.Join(t.TempDir(), "exit")
	script := fmt.Sprintf("%s -s 127.0.0.1 -p %s --bind 127.0.0.3:0 --nostun; echo $? > %s; sleep 30", cliBin, port, exitFile)
	if out, err := exec.Command(tmux, "new-session", "-d", "-s", session, "-x", "160", "-y", "30", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer exec.Command(tmux, "kill-session", "-t", session).Run()
	capture := func() string {
		out, _ := exec.Command(tmux, "capture-pane", "-t", session, "-p").Output()
		return string(out)
	}
	wants := []string{"PTP Client version", "Pkts Sent", "Acks Lost", "Avg RTT", "Path", "Loss %", "Jitter",
		"('127.0.0.1', " + port + ")", "Log output", "Status", "Server sees us as", "Address: 127.0.0.3:", "direct"}
	var screen string
	var missing []string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		screen = capture()
		missing = missing[:0]
		for _, w := range wants {
			if !strings.Contains(screen, w) {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("screen lacks %q:\n%s", missing, screen)
	}
	exec.Command(tmux, "send-keys", "-t", session, "q").Run()
	var code []byte
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if code, err = os.ReadFile(exitFile); err == nil && len(code) > 0 {
			break
		}
	}
	if strings.TrimSpace(string(code)) != "0" {
		t.Fatalf("exit status %q after q\n%s", code, capture())
	}
	if after := capture(); !strings.Contains(after, "server 127.0.0.1:"+port) || strings.Contains(after, "Log output") {
		t.Errorf("after q the screen should be restored and the report printed:\n%s", after)
	}
}
