package cmd

import (
	"bytes"
	"context"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/probekit/probekit/shared/cliutil"
)

func TestGetopt(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"spp -a 1.2.3.4 -A 5.6.7.8 -cp", "spp -a=1.2.3.4 -A=5.6.7.8 -c -p"},
		{"spp -cpa1.2.3.4 -o100", "spp -c -p -a=1.2.3.4 -o=100"},
		{"spp -o -100 -t -1", "spp -o=-100 -t=-1"},
		{"spp -#4095 -# 63", "spp -#=4095 -#=63"},
		{"spp -v 64 -G500 -d120", "spp -v=64 -G=500 -d=120"},
		{"spp --json --format csv -c", "spp --json --format csv -c"},
		{"spp --log-level -c", "spp --log-level -c"},
		{"spp --format=csv -p -- -c", "spp --format=csv -p -- -c"},
		{"spp -x -cz", "spp -x -c -z"},
		{"spp -f - -F x", "spp -f=- -F=x"},
		{"spp -o", "spp -o"},
		{"spp stray", "spp stray"},
	}
	for _, tc := range tests {
		if got := strings.Join(Getopt(strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("Getopt(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

const td = "../../testdata/"

func runCLI(t *testing.T, args string) (int, string, string) {
	t.Helper()
	app := NewApp("test")
	var out, errb bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errb
	code := cliutil.Run(context.Background(), app, Getopt(strings.Fields("spp "+args)))
	return code, out.String(), errb.String()
}

// TestCommandLines runs the reference command lines (data README) through the real flag
// parsing, in the original's getopt spellings.
func TestCommandLines(t *testing.T) {
	cp, _ := os.ReadFile(td + "spp-udpecho.spp036-cp.txt")
	bp, _ := os.ReadFile(td + "spp-udpecho.spp036-bp.txt")
	mp, _ := os.ReadFile(td + "spp-udpecho.spp036-mp.txt")
	files := "-a 10.71.1.1 -A 10.71.2.1 -f " + td + "spp-udpecho-ref.pcap -F " + td + "spp-udpecho-mon.pcap"
	plus := "-a 10.71.1.1 -A 10.71.2.1 -f " + td + "spp-udpecho-ref.pcap -F " + td + "spp-udpecho-mon-plus100s.pcap"
	tests := []struct {
		args string
		want string
	}{
		{files + " -c -p", string(cp)},
		{files + " -cp", string(cp)},
		{"-cpa10.71.1.1 -A10.71.2.1 -f" + td + "spp-udpecho-ref.pcap -F" + td + "spp-udpecho-mon.pcap", string(cp)},
		{files + " -b -p", string(bp)},
		{files + " -mp", string(mp)},
		{files + " -cp -#63 -G 10000 -d 60 -o 0", string(cp)},
		{plus + " -o100 -cp", string(cp)},
		{plus + " -o 0100 -cp", string(cp)}, // decimal like atoi, not octal (urfave IntFlag pitfall)
		{plus + " -d 120 -c -p", string(cp)},
		{plus + " -c -p", ""},
	}
	for _, tc := range tests {
		code, out, errs := runCLI(t, tc.args)
		if code != 0 || out != tc.want {
			t.Errorf("spp %s: exit %d, stderr %q, output %d bytes (want %d)", tc.args, code, errs, len(out), len(tc.want))
		}
	}
}

func TestRTTCountAndFormats(t *testing.T) {
	files := "-a 10.71.1.1 -A 10.71.2.1 -f " + td + "spp-ping-ref.pcap -F " + td + "spp-ping-mon.pcap"
	code, out, errs := runCLI(t, files+" -v 64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// RTT COUNT is the sum of the printed RTTs in µs.
	var sum int64
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		whole, frac, _ := strings.Cut(f[1], ".")
		if whole != "0" {
			t.Fatalf("rtt %s", f[1])
		}
		var v int64
		for _, c := range frac {
			v = v*10 + int64(c-'0')
		}
		sum += v
	}
	if want := "RTT COUNT: "; !strings.Contains(errs, want) || !strings.Contains(errs, want+itoa(sum)+"\n") {
		t.Fatalf("stderr %q, want RTT COUNT: %d", errs, sum)
	}
	code, out, _ = runCLI(t, files+" --json")
	if code != 0 || strings.Count(out, "\n") != 299 || !strings.HasPrefix(out, `{"n":1,"ts":1795410054.492751,"rtt":0.021163,"spt":0.000155,`) {
		t.Fatalf("json: exit %d %q", code, out[:min(len(out), 200)])
	}
	code, out, _ = runCLI(t, files+" --format csv")
	if code != 0 || strings.Count(out, "\n") != 300 || !strings.HasPrefix(out, "n,ts,rtt,spt,out_ref,out_mon,in_ref,in_mon\n1,1795410054.492751,") {
		t.Fatalf("csv: exit %d %q", code, out[:min(len(out), 200)])
	}
}

func itoa(v int64) string {
	var b []byte
	if v == 0 {
		return "0"
	}
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

func TestUsageErrors(t *testing.T) {
	base := "-a 10.71.1.1 -A 10.71.2.1 -f " + td + "spp-ping-ref.pcap -F " + td + "spp-ping-mon.pcap"
	for _, tc := range []struct {
		args, msg string
	}{
		{"-A 10.71.2.1 -f x -F y", "-a and -A"},
		{base + " -o 1.5", "-o \"1.5\""},
		{base + " -d -1", "-d \"-1\""},
		{base + " -# 0", "-# \"0\""},
		{base + " -# 9000", "-# \"9000\""},
		{base + " -l 5", "-l \"5\""},
		{base + " -g 0", "-g \"0\""},
		{base + " -t 0", "-t \"0\""},
		{base + " -t -1", "-t \"-1\""},
		{base + " -m -b", "-m and -b"},
		{base + " -i eth0", "exactly one reference point input"},
		{"-a 10.71.1.1 -A 10.71.2.1 -f x", "exactly one monitor point input"},
		{base + " -x", "not defined"},
		{base + " stray", "unexpected argument"},
		{"-a 10.71.1.1 -A ::1 -f x -F y", "IP version"},
		{"-s 10.0.0.1 -a 10.71.1.1 -A 10.71.2.1", "-I"},
		{base + " --format xml", "format"},
	} {
		code, out, errs := runCLI(t, tc.args)
		if code != 2 || out != "" || !strings.Contains(errs, tc.msg) || strings.Count(errs, "\n") != 1 {
			t.Errorf("spp %s: exit %d, stdout %q, stderr %q (want exit 2 and %q)", tc.args, code, out, errs, tc.msg)
		}
	}
}

func TestDefaultsMatchOriginal(t *testing.T) {
	app := NewApp("x")
	want := map[string]string{"o": "0", "d": "60", "v": "0", "l": "2", "g": "100", "t": "1", "port": "9822"}
	got := map[string]string{}
	for _, f := range app.Flags {
		if g, ok := f.(interface{ GetDefaultText() string }); ok {
			if _, in := want[f.Names()[0]]; in {
				got[f.Names()[0]] = strings.Trim(g.GetDefaultText(), `"`)
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults %v, want %v", got, want)
	}
}

// The exit-code rule (README): a file run stopped by SIGINT before its end exits 130 (its
// output is partial); the same run without a signal exits 0.
func TestInterruptedFileRunExitCode(t *testing.T) {
	args := Getopt(strings.Fields("spp -a 10.71.1.1 -A 10.71.2.1 -f " + td + "spp-udpecho-ref.pcap -F " + td + "spp-udpecho-mon.pcap"))
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&cliutil.SignalError{Signal: syscall.SIGINT})
	app := NewApp("test")
	var out, errb bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errb
	if code := cliutil.Run(ctx, app, args); code != cliutil.ExitSIGINT {
		t.Errorf("interrupted file run: exit %d, want %d (stderr %q)", code, cliutil.ExitSIGINT, errb.String())
	}
	app = NewApp("test")
	app.Writer, app.ErrWriter = &out, &errb
	if code := cliutil.Run(context.Background(), app, args); code != 0 {
		t.Errorf("file run: exit %d (stderr %q)", code, errb.String())
	}
}
