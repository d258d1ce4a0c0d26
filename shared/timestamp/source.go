package timestamp

import "fmt"

// Source says where a timestamp was taken, so tools can report how much to trust it.
type Source uint8

const (
	// SourceNone means no timestamp was taken (the zero value).
	SourceNone Source = iota
	// SourceUser is a user-space clock read (time.Now) before send or after receive.
	SourceUser
	// SourceKernel is a software timestamp taken by the kernel (SO_TIMESTAMPING software,
	// SO_TIMESTAMPNS).
	SourceKernel
	// SourceHardware is a NIC hardware timestamp (SO_TIMESTAMPING raw hardware, PHC time).
	SourceHardware
)

var sourceNames = [...]string{"none", "user", "kernel", "hardware"}

// String returns "none", "user", "kernel" or "hardware".
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// MarshalText encodes s as its name, so JSON output shows "kernel" rather than 2.
func (s Source) MarshalText() ([]byte, error) {
	if int(s) >= len(sourceNames) {
		return nil, fmt.Errorf("timestamp: invalid source %d", uint8(s))
	}
	return []byte(sourceNames[s]), nil
}

// UnmarshalText parses a name produced by MarshalText.
func (s *Source) UnmarshalText(b []byte) error {
	for i, n := range sourceNames {
		if string(b) == n {
			*s = Source(i)
			return nil
		}
	}
	return fmt.Errorf("timestamp: unknown source %q", b)
}
