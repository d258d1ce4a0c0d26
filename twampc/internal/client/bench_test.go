package client

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLightRate sends b.N packets at 100 kpps (10 µs periodic) to twampd --light on
// loopback and reports the achieved rate and the loss (the sender/receiver hot paths).
func BenchmarkLightRate(b *testing.B) {
	d := startTwampd(b, "--light", "-S", "127.0.0.1:0").light
	n := max(b.N, 1000)
	b.ResetTimer()
	res, err := Run(context.Background(), Config{Target: d, Light: true, Count: n, Schedule: Schedule{Interval: 10 * time.Microsecond},
		Padding: -1, LossTimeout: time.Second, Logger: quiet()}, Output{})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	r := res[0]
	span := r.Last.Sub(r.First).Seconds()
	b.ReportMetric(float64(r.Sent-1)/span, "pps")
	b.ReportMetric(100*r.Seq.Loss(), "loss%")
}
