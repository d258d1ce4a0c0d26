package tcpcraft

import (
	"testing"

	"github.com/probekit/probekit/shared/testsupport/labtest"
)

// TestRecorderCloseKeepsLast: segments sent right before Close are recorded (Close drains the
// ring; it used to close it at once and lose the last block, e.g. from --pcap).
func TestRecorderCloseKeepsLast(t *testing.T) {
	labtest.InNetns(t, func() error {
		const port = 34998
		for round := range 5 {
			rec, err := NewRecorder("any", lo, port)
			if err != nil {
				return err
			}
			raw, err := OpenRaw(0)
			if err != nil {
				return err
			}
			const n = 20
			for i := range n {
				s := Segment{Src: lo, Dst: lo, TTL: 64, SrcPort: 40000, DstPort: port, Seq: uint32(i), Ack: 1, Flags: FlagACK | FlagPSH,
					Window: 100, Payload: []byte{byte(i)}}
				if err := raw.Send(s.Bytes()); err != nil {
					return err
				}
			}
			raw.Close()
			if err := rec.Close(); err != nil {
				return err
			}
			got := 0
			for _, r := range rec.Records() {
				var s Segment
				if Decode(r.Data, &s) == nil && s.SrcPort == 40000 && s.Flags&FlagRST == 0 {
					got++
				}
			}
			if got != n {
				t.Errorf("round %d: %d of the %d segments sent before Close recorded", round, got, n)
			}
		}
		return nil
	})
}
