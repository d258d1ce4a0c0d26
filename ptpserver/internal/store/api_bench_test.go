package store_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/probekit/probekit/ptpserver/internal/store"
	"github.com/probekit/probekit/ptpserver/internal/web"
)

// BenchmarkMatrixAPI is GET /api/matrix of the 50-peer mesh with a month of data, through the
// web handler and its side-port rules, as a browser or scraper asks for it.
func BenchmarkMatrixAPI(b *testing.B) {
	path, end := store.MonthFixture(b)
	s, err := store.Open(context.Background(), path, store.Options{Now: func() time.Time { return end }, NoBackground: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := web.Wrapped(web.New(web.Config{Source: s, Now: func() time.Time { return end }}), "127.0.0.1:9000")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodGet, "/api/matrix?mesh=big", nil)
		req.Host = "127.0.0.1:9000"
		w := httptest.NewRecorder()
		t := time.Now()
		h.ServeHTTP(w, req)
		lat = append(lat, time.Since(t))
		if w.Code != 200 || w.Body.Len() < 2450*200 {
			b.Fatalf("HTTP %d, %d bytes", w.Code, w.Body.Len())
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "max-ms")
}
