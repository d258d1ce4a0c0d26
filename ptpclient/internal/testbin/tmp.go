package testbin

import "os"

func mkdtemp() (string, error) { return os.MkdirTemp("", "ptpclient-test-bin-") }
