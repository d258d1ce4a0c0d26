package stats

import (
	"encoding/json"
	"testing"
	"time"
)

// Series and Jitter state is read back from JSON files (merging results across runs), so the
// decoders must reject inconsistent input with an error and never panic; what they accept
// must re-encode to an equivalent state.
func FuzzSeriesJSON(f *testing.F) {
	f.Add([]byte(`{"count":3,"min_ns":1,"max_ns":3,"mean_ns":2,"m2_ns2":2,"samples_ns":[1,2,3]}`))
	f.Add([]byte(`{"count":10003,"min_ns":-5,"max_ns":3000000,"mean_ns":2,"m2_ns2":2,"buckets":[[-5,1],[2048,10001],[3000000,1]]}`))
	f.Add([]byte(`{"count":0,"min_ns":0,"max_ns":0,"mean_ns":0,"m2_ns2":0}`))
	f.Add([]byte(`{"count":10001,"min_ns":-9223372036854775808,"max_ns":9223372036854775807,"mean_ns":0,"m2_ns2":0,"buckets":[[-9223372036854775808,10000],[9223372036854775807,1]]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Series
		if err := json.Unmarshal(b, &s); err != nil {
			return
		}
		m := s.Summary()
		if s.Count() > 0 && (m.P50US < m.MinUS || m.P50US > m.MaxUS) {
			t.Fatalf("p50 %v outside [%v, %v]", m.P50US, m.MinUS, m.MaxUS)
		}
		out, err := json.Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var back Series
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		if back.Summary() != m {
			t.Fatalf("summary changed: %+v vs %+v", back.Summary(), m)
		}
		s.Add(time.Millisecond) // still usable
	})
}

func FuzzJitterJSON(f *testing.F) {
	f.Add([]byte(`{"jitter_us":179.688,"jitter_ns":179687.5,"count":3,"last_transit_ns":11000000}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var j Jitter
		if err := json.Unmarshal(b, &j); err != nil {
			return
		}
		j.Add(time.Millisecond)
		if j.Nanos() < 0 {
			t.Fatalf("negative jitter %v", j.Nanos())
		}
	})
}
