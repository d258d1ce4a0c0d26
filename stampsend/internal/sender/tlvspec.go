package sender

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/shared/testpkt"
)

// TLVSpec is one TLV the sender puts in every test packet, chosen like teaparty's
// "tlvs" subcommands: NAME[:OPT=VALUE[,OPT=VALUE…]].
//
//	time                                  Timestamp Information (zeroed, the reflector fills it)
//	cos[:dscp=cs1,ecn=not-ect]            Class of Service asking for DSCP1/ECN1 on the reply
//	location                              Location (RFC 8972 §4.2): Source IP and Destination IP Address requests
//	padding[:size=64]                     Extra Padding
//	access-report[:id=1,code=1]           Access Report (id 1 3GPP, 2 non-3GPP; code 1 available, 2 unavailable)
//	followup                              Follow-Up Telemetry (the reflector's previous reply)
//	direct-measurement                    Direct Measurement counters
//	destination-node[:addr=IP]            Destination Node Address (RFC 9503; default the target)
//	unrecognized[:type=200,size=4]        a TLV of a type the reflector should not know
type TLVSpec struct {
	Name string
	Type testpkt.TLVType
	// Value is the request value (for direct-measurement, S_TxC is rewritten per packet).
	Value []byte
}

// ErrTLVSpec reports a bad --tlv argument.
var ErrTLVSpec = errors.New("bad TLV spec")

// TLVNames lists the accepted TLV names.
var TLVNames = []string{"time", "cos", "location", "padding", "access-report", "followup",
	"direct-measurement", "destination-node", "unrecognized"}

var ecnNames = map[string]uint8{"not-ect": 0, "ect1": 1, "ect0": 2, "ce": 3}

// ParseTLVSpec parses one --tlv argument for a session towards target.
func ParseTLVSpec(s string, target netip.AddrPort) (TLVSpec, error) {
	name, rest, _ := strings.Cut(s, ":")
	opts := map[string]string{}
	if rest != "" {
		for _, kv := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return TLVSpec{}, fmt.Errorf("%w %q: option %q is not KEY=VALUE", ErrTLVSpec, s, kv)
			}
			opts[k] = v
		}
	}
	take := func(k, def string) string {
		v, ok := opts[k]
		delete(opts, k)
		if !ok {
			return def
		}
		return v
	}
	num := func(k string, def, lo, hi int64) (int64, error) {
		v, err := cliutil.ParseInt(take(k, strconv.FormatInt(def, 10)), lo, hi)
		if err != nil {
			return 0, fmt.Errorf("%w %q: %s: %v", ErrTLVSpec, s, k, err)
		}
		return v, nil
	}
	spec := TLVSpec{Name: name}
	switch name {
	case "time", "timestamp":
		spec.Type, spec.Value = testpkt.TypeTimestampInformation, make([]byte, testpkt.LenTimestampInformation)
	case "cos", "class-of-service":
		d, err := cliutil.ParseDSCP(take("dscp", "cs1"))
		if err != nil {
			return spec, fmt.Errorf("%w %q: dscp: %v", ErrTLVSpec, s, err)
		}
		e, ok := ecnNames[take("ecn", "not-ect")]
		if !ok {
			return spec, fmt.Errorf("%w %q: ecn must be not-ect, ect0, ect1 or ce", ErrTLVSpec, s)
		}
		spec.Type, spec.Value = testpkt.TypeClassOfService, testpkt.ClassOfService{DSCP1: d, ECN1: e}.AppendTo(nil)
	case "location":
		spec.Type, spec.Value = testpkt.TypeLocation, testpkt.NewLocationRequest()
	case "padding", "extra-padding":
		n, err := num("size", 64, 0, 9000)
		if err != nil {
			return spec, err
		}
		spec.Type, spec.Value = testpkt.TypeExtraPadding, make([]byte, n)
	case "access-report":
		id, err := num("id", int64(testpkt.AccessID3GPP), 0, 15)
		if err != nil {
			return spec, err
		}
		code, err := num("code", int64(testpkt.AccessAvailable), 0, 255)
		if err != nil {
			return spec, err
		}
		spec.Type, spec.Value = testpkt.TypeAccessReport, testpkt.AccessReport{ID: uint8(id), ReturnCode: uint8(code)}.AppendTo(nil)
	case "followup", "follow-up":
		spec.Type, spec.Value = testpkt.TypeFollowUpTelemetry, make([]byte, testpkt.LenFollowUpTelemetry)
	case "direct-measurement", "dm":
		spec.Type, spec.Value = testpkt.TypeDirectMeasurement, make([]byte, testpkt.LenDirectMeasurement)
	case "destination-node":
		a := target.Addr().Unmap()
		if v := take("addr", ""); v != "" {
			p, err := netip.ParseAddr(v)
			if err != nil {
				return spec, fmt.Errorf("%w %q: addr: %v", ErrTLVSpec, s, err)
			}
			a = p.Unmap()
		}
		spec.Type, spec.Value = testpkt.TypeDestinationNodeAddress, a.AsSlice()
	case "unrecognized":
		typ, err := num("type", 200, 0, 255)
		if err != nil {
			return spec, err
		}
		n, err := num("size", 4, 0, 9000)
		if err != nil {
			return spec, err
		}
		spec.Type, spec.Value = testpkt.TLVType(typ), make([]byte, n)
	default:
		return spec, fmt.Errorf("%w %q: unknown TLV (one of %s)", ErrTLVSpec, s, strings.Join(TLVNames, ", "))
	}
	if len(opts) > 0 {
		for k := range opts {
			return spec, fmt.Errorf("%w %q: unknown option %q", ErrTLVSpec, s, k)
		}
	}
	return spec, nil
}
