package web

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's headless-capable browser (package "chromium", installed by
// scripts/deps.sh).
const chromium = "/usr/bin/chromium"

type domCell struct {
	From, To, Path, Class, Title, Text string
}

// TestPageInChromium opens the page in real headless Chromium, waits for the matrix, checks
// every cell against the reports the fixture stored (path, colour class, RTT, loss, reason on
// hover), selects a pair and a time range for the history plot, and saves a screenshot
// (go test -artifacts keeps it; the path is logged).
func TestPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s not found: install the Debian package chromium (scripts/deps.sh does)", chromium)
	}
	s, c := fixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	h := New(Config{Source: s, Now: c.Now, Refresh: 300 * time.Millisecond})
	srv, err := Listen(ctx, "127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	url := fmt.Sprintf("http://%s/?mesh=lab", srv.Addr())

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1300, 1500), chromedp.Flag("headless", true))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	var cells []domCell
	var clients, events []string
	err = chromedp.Run(bctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(`#matrix td[data-path="relay"]`),
		chromedp.Evaluate(`[...document.querySelectorAll('#matrix td[data-from]')].map(td => ({From: td.dataset.from,
			To: td.dataset.to, Path: td.dataset.path, Class: td.className, Title: td.title, Text: td.innerText}))`, &cells),
		chromedp.Evaluate(`[...document.querySelectorAll('#clients tbody tr')].map(tr => tr.innerText)`, &clients),
		chromedp.Evaluate(`[...document.querySelectorAll('#events tbody tr')].map(tr => tr.innerText)`, &events),
	)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if len(cells) != len(truths) {
		t.Fatalf("%d matrix cells in the page, want %d: %+v", len(cells), len(truths), cells)
	}
	for _, tr := range truths {
		var got *domCell
		for i := range cells {
			if cells[i].From == tr.from && cells[i].To == tr.to {
				got = &cells[i]
			}
		}
		if got == nil {
			t.Errorf("no cell %s→%s in the page", short(tr.from), short(tr.to))
			continue
		}
		loss := 100 * float64(tr.lost) / float64(tr.sent)
		rtt := float64(tr.rttAvgUS) / 1000
		wantRTT := fmt.Sprintf("%.2f ms", rtt)
		if rtt >= 10 {
			wantRTT = fmt.Sprintf("%.1f ms", rtt)
		}
		if tr.sent == tr.lost {
			wantRTT = "— ms"
		}
		wantLoss := fmt.Sprintf("%.1f %%", loss)
		if got.Path != tr.path.String() || !strings.Contains(got.Class, "p-"+tr.path.String()) ||
			!strings.Contains(got.Text, tr.path.String()) || !strings.Contains(got.Text, wantRTT) ||
			!strings.Contains(got.Text, wantLoss) || (loss >= 5) != strings.Contains(got.Class, "lossy") ||
			!strings.Contains(got.Title, tr.reason) ||
			!strings.Contains(got.Title, fmt.Sprintf("(%d of %d)", tr.lost, tr.sent)) {
			t.Errorf("cell %s→%s: %+v\nwant path %s, %q, %q, reason %q", short(tr.from), short(tr.to), *got, tr.path, wantRTT, wantLoss, tr.reason)
		}
	}
	if len(clients) != 3 || !strings.Contains(clients[0], "upnp-igd: 45.71.0.101:41000 (3600 s)") ||
		!strings.Contains(clients[0], "pcp: UNSUPP_VERSION") || !strings.Contains(clients[1], "upnp-igd: no gateway (no IGD found)") ||
		!strings.Contains(clients[2], "not tried") || !strings.Contains(clients[0], "address-and-port-dependent") {
		t.Errorf("clients table: %q", clients)
	}
	if len(events) != 4 || !strings.Contains(events[0], "address") || !strings.Contains(events[0], "public port changed") {
		t.Errorf("events table (newest first): %q", events)
	}

	// A click on a cell plots its history; the range buttons change the resolution.
	var info, points string
	sel := fmt.Sprintf(`#matrix td[data-from="%s"][data-to="%s"]`, uA, uC)
	err = chromedp.Run(bctx,
		jsClick(sel),
		chromedp.WaitVisible(`#plot svg[data-points="7"]`),
		chromedp.Text(`#hinfo`, &info),
	)
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	if info != "7 points, 5 min each" {
		t.Errorf("history info %q", info)
	}
	var shot []byte
	err = chromedp.Run(bctx,
		jsClick(`#ranges button[data-range="7d"]`),
		chromedp.WaitVisible(`#ranges button.on[data-range="7d"]`),
		chromedp.Poll(`document.getElementById('hinfo').textContent.includes('60 min')`, nil, chromedp.WithPollingTimeout(20*time.Second)),
		chromedp.AttributeValue(`#plot svg`, "data-points", &points, nil),
		jsClick(`#ranges button[data-range="1h"]`),
		chromedp.WaitVisible(`#plot svg[data-points="7"]`),
		chromedp.FullScreenshot(&shot, 100), // 100: PNG,
	)
	if err != nil {
		t.Fatalf("range selector: %v", err)
	}
	if points != "1" { // 10:00-10:30 is one hourly bucket
		t.Errorf("7d range: %s points, want 1", points)
	}
	out := filepath.Join(t.ArtifactDir(), "mesh-lab.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", out, len(shot))
}

// jsClick finds and clicks the element in one script run. The page refreshes live and
// redraws the matrix, so a node that chromedp.Click looked up can be gone by the time it
// clicks it ("Could not find node with given id"); polling retries until an element is there.
func jsClick(sel string) chromedp.Action {
	return chromedp.Poll(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return false; e.click(); return true; })()`, sel),
		nil, chromedp.WithPollingTimeout(20*time.Second))
}
