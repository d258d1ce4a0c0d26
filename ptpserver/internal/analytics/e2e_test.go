package analytics

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/ptpserver/internal/web"
	"github.com/probekit/probekit/shared/testsupport/gobuild"
	"github.com/probekit/probekit/shared/testsupport/syncbuf"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gobuild.Cleanup()
	os.Exit(code)
}

func freeUDP(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// clientSummary is the part of ptpclient's final JSON summary the test compares.
type clientSummary struct {
	UUID  string `json:"uuid"`
	Peers []struct {
		UUID     string                          `json:"uuid"`
		Path     string                          `json:"path"`
		Sent     uint64                          `json:"sent"`
		Received uint64                          `json:"received"`
		Lost     uint64                          `json:"lost"`
		RTT      struct{ Min, Avg, Max float64 } `json:"rtt_ms"`
	} `json:"peers"`
}

func summaryOf(t *testing.T, out string) clientSummary {
	t.Helper()
	var s clientSummary
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, `{"type":"summary"`) {
			if err := json.Unmarshal([]byte(l), &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s.UUID == "" {
		t.Fatalf("no summary in:\n%s", out)
	}
	return s
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	if r.StatusCode != 200 {
		t.Fatalf("%s: HTTP %d %s", url, r.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// TestE2EServerWebStore runs the real ptpserver with --store and --web and three real
// ptpclients on loopback (127.0.0.3-5, so every path is direct). While they run it reads the
// matrix from the API and from the page in headless Chromium; after they end it checks the
// matrix against the clients' own JSON summaries, stops the server with SIGTERM and checks
// that the store holds every report the server printed (--reports) and the membership events.
func TestE2EServerWebStore(t *testing.T) {
	srvBin := gobuild.Binary(t, "../..")
	cliBin := gobuild.Binary(t, "../../../ptpclient")
	dir := t.TempDir()
	db := filepath.Join(dir, "ptp.db")
	port := strconv.Itoa(freeUDP(t))
	srv := exec.Command(srvBin, "-s", "127.0.0.1", "-p", port, "--json", "--reports", "--no-stun", "--store", db,
		"--store-every", "0", "--web", "127.0.0.1:0")
	var srvOut, srvErr syncbuf.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvErr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	// The page's address is in the log ("mesh web page" url=http://127.0.0.1:N/).
	var base string
	re := regexp.MustCompile(`url="?(http://127\.0\.0\.1:\d+/)`)
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(50 * time.Millisecond) {
		if m := re.FindStringSubmatch(srvErr.String()); m != nil {
			base = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no web page URL in the server's log:\n%s", srvErr.String())
		}
	}
	var outs [3]syncbuf.Buffer
	var cmds [3]*exec.Cmd
	for i := range cmds {
		cmds[i] = exec.Command(cliBin, "-s", "127.0.0.1", "-p", port, "--bind", "127.0.0."+strconv.Itoa(3+i)+":0",
			"--json", "--duration", "20s", "--nostun")
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
		defer cmds[i].Process.Kill()
	}
	// Reports come every 7 s per client: wait for all six cells with replies.
	var m web.MatrixJSON
	for deadline := time.Now().Add(40 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		getJSON(t, base+"api/matrix?mesh=", &m)
		ok := len(m.Peers) == 3 && len(m.Cells) == 6
		for _, c := range m.Cells {
			ok = ok && c.Received > 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("matrix never complete: %+v\nserver log:\n%s", m, srvErr.String())
		}
	}
	// The page shows the same cells (read in Chromium when it is installed).
	if _, err := os.Stat(chromiumBin); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumBin), chromedp.NoSandbox,
			chromedp.DisableGPU, chromedp.WindowSize(1300, 1200))
		actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
		defer acancel()
		bctx, bcancel := chromedp.NewContext(actx)
		defer bcancel()
		var cells []struct{ From, To, Path, Rtt string }
		var shot []byte
		err := chromedp.Run(bctx, chromedp.Navigate(base),
			chromedp.WaitVisible(`#matrix td[data-path="direct"]`),
			chromedp.Poll(`document.querySelectorAll('#matrix td[data-path="direct"]').length === 6`, nil, chromedp.WithPollingTimeout(20*time.Second)),
			chromedp.Evaluate(`[...document.querySelectorAll('#matrix td[data-from]')].map(td => ({From: td.dataset.from,
				To: td.dataset.to, Path: td.dataset.path, Rtt: td.dataset.rttAvgMs}))`, &cells),
			chromedp.FullScreenshot(&shot, 100))
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		os.WriteFile(filepath.Join(t.ArtifactDir(), "ptpserver-mesh.png"), shot, 0o644)
		var now web.MatrixJSON
		getJSON(t, base+"api/matrix?mesh=", &now)
		for _, dc := range cells {
			found := false
			for _, src := range []web.MatrixJSON{m, now} {
				for _, c := range src.Cells {
					if c.From == dc.From && c.To == dc.To && c.Path == dc.Path {
						found = true
					}
				}
			}
			if !found || len(cells) != 6 {
				t.Errorf("page cell %+v is not in the API's matrix (%d cells on the page)", dc, len(cells))
			}
		}
	} else {
		t.Logf("%s not installed (Debian package chromium): page not checked", chromiumBin)
	}
	getJSON(t, base+"api/matrix?mesh=", &m)
	sums := map[string]clientSummary{}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, outs[i].String())
		}
		s := summaryOf(t, outs[i].String())
		sums[s.UUID] = s
	}
	// Each cell is the reporter's last REACH before its end: the same path, counters no
	// larger than its final summary's, and an average RTT inside the summary's range.
	for _, c := range m.Cells {
		s, ok := sums[c.From]
		if !ok {
			t.Fatalf("cell from %s: no such client (%v)", c.From, m.Peers)
		}
		matched := false
		for _, p := range s.Peers {
			if p.UUID != c.To {
				continue
			}
			matched = true
			if p.Path != c.Path || uint64(c.Sent) > p.Sent || uint64(c.Lost) > p.Lost || c.RTTms.Avg < p.RTT.Min-0.001 || c.RTTms.Avg > p.RTT.Max+0.001 {
				t.Errorf("cell %s→%s %+v does not fit the client's summary %+v", c.From[:8], c.To[:8], c, p)
			}
		}
		if !matched {
			t.Errorf("client %s's summary lacks peer %s", c.From[:8], c.To[:8])
		}
	}
	// SIGTERM: the server stops, the store commits everything it was given.
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("server: %v\n%s", err, srvErr.String())
	}
	var printed int
	var joins, leaves int
	sc := bufio.NewScanner(strings.NewReader(srvOut.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e struct {
			Type  string            `json:"type"`
			Peers []json.RawMessage `json:"peers"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		switch e.Type {
		case "report":
			printed += len(e.Peers)
		case "join":
			joins++
		case "leave":
			leaves++
		}
	}
	st, err := store.Open(context.Background(), db, store.Options{NoBackground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.ReportCount(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := st.Events(context.Background(), "", time.Now().Add(-time.Hour), time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var sj, sl int
	for _, e := range ev {
		switch e.Kind {
		case store.EventJoin:
			sj++
		case store.EventLeave:
			sl++
		}
	}
	t.Logf("server printed %d peer reports, %d joins, %d leaves; store holds %d reports, %d joins, %d leaves", printed, joins, leaves, stored, sj, sl)
	if printed == 0 || stored != int64(printed) || sj != 3 || sl != 3 || joins != 3 || leaves != 3 {
		t.Fatalf("store: %d reports (server printed %d), %d joins, %d leaves", stored, printed, sj, sl)
	}
}

const chromiumBin = "/usr/bin/chromium"
