package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/probekit/probekit/shared/testsupport/syncbuf"
	"github.com/probekit/probekit/shared/twampctl"
)

// Issue 10: a second twampd (twampd and twampd --light) on one host finds the metrics port
// taken; it warns and serves TWAMP-Control without metrics instead of dying.
func TestMetricsPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs syncbuf.Buffer
	l := logrus.New()
	l.SetOutput(&logs)
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Modes: twampctl.ModeUnauthenticated,
		MetricsAddr: taken.Addr().String(), Count: 1024, Logger: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan []net.Addr, 1)
	go func() { done <- s.Run(ctx, func(a []net.Addr) { ready <- a }) }()
	var addrs []net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run died: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	if len(addrs) != 1 {
		t.Errorf("addresses %v, want only the control listener", addrs)
	}
	ctl, err := dial(t, addrs[0].String(), clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatalf("control connection with the metrics port taken: %v", err)
	}
	ctl.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "metrics and status endpoint unavailable") {
		t.Errorf("no warning logged: %s", out)
	}
}

// Issue 11 H10: the metrics port off loopback needs a token, and then every request must
// carry it (/status names identities and peers); /status is paginated; the metrics come
// from the shared writer with HELP lines.
func TestMetricsPortRules(t *testing.T) {
	if _, err := New(Config{Listen: []string{"127.0.0.1:0"}, MetricsAddr: "0.0.0.0:0", Modes: twampctl.ModeUnauthenticated}); err == nil ||
		!strings.Contains(err.Error(), "needs a token") {
		t.Errorf("wildcard metrics without a token: %v", err)
	}
	const tok = "twampd-metrics-token-0123"
	ts := startServer(t, Config{MetricsAddr: "0.0.0.0:0", MetricsToken: tok, Modes: twampctl.ModeUnauthenticated})
	_, port, _ := net.SplitHostPort(ts.metrics)
	base := "http://127.0.0.1:" + port
	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/status", ""); code != http.StatusUnauthorized {
		t.Errorf("/status without token: %d", code)
	}
	if code, _ := get("/metrics", "wrong-token-wrong-token"); code != http.StatusUnauthorized {
		t.Errorf("/metrics with a wrong token: %d", code)
	}
	// Three sessions, listed one per page.
	ctl, err := dial(t, ts.ctl, clientCfg(twampctl.ModeUnauthenticated))
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	for range 3 {
		newSender(t, ctl, 0, 0)
	}
	code, body := get("/status?limit=1&offset=1", tok)
	var st Status
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || st.SessionsTotal != 3 || len(st.Sessions) != 1 {
		t.Errorf("/status page: %d %+v", code, st)
	}
	if code, _ := get("/status?limit=x", tok); code != http.StatusBadRequest {
		t.Errorf("/status?limit=x: %d", code)
	}
	code, body = get("/metrics", tok)
	for _, want := range []string{"# HELP twampd_sessions_total Test sessions accepted.\n", "twampd_sessions 3\n",
		"# TYPE twampd_control_connections gauge\ntwampd_control_connections 1\n", `twampd_metrics_refused_requests_total{rule="token"} 2`,
		"twampd_received_packets_total 0\n", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
