package testpkt

import "github.com/probekit/probekit/shared/testsupport/stampvectors"

// interopKey is the HMAC key of the teaparty vectors and the stamp-suite authenticated capture.
const interopKey = stampvectors.InteropKey
