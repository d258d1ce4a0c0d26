package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/probekit/probekit/shared/loadgen"
	"github.com/probekit/probekit/shared/timestamp"
	"github.com/probekit/probekit/shared/udpsock"
)

func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pkbench")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestEndToEnd(t *testing.T) {
	bin := build(t)

	t.Run("reflector echo baseline json", func(t *testing.T) {
		out, errOut, code := run(t, bin, "--json", "--log-level", "warn", "reflector",
			"--rate", "4000", "--duration", "500ms", "--no-search",
			"--residence-rate", "2000", "--residence-duration", "200ms")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep loadgen.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if rep.Limit.Name != "limit-echo" || rep.Target.Name != "echo" {
			t.Errorf("names %q %q", rep.Limit.Name, rep.Target.Name)
		}
		for _, tr := range []loadgen.TargetReport{rep.Limit, rep.Target} {
			if len(tr.Fixed) != 1 || tr.Fixed[0].Sent != 2000 || tr.Fixed[0].CPU <= 0 {
				t.Errorf("%s: %+v", tr.Name, tr.Fixed)
			}
		}
		if rep.CPURatio <= 0 || len(rep.Checks) == 0 {
			t.Errorf("ratio %v checks %+v", rep.CPURatio, rep.Checks)
		}
	})

	t.Run("reflector command with residence text", func(t *testing.T) {
		// The "reflector" is pkbench's own stamping echo started through --cmd, so {port}
		// substitution, exec and PID tracking are exercised, and its replies carry T2/T3:
		// text output has both rows and the residence checks.
		out, errOut, code := run(t, bin, "--log-level", "warn", "reflector",
			"--cmd", bin+" --log-level warn echo --stamp --listen 127.0.0.1:{port}", "--rate", "3000", "--duration", "300ms",
			"--no-search", "--residence-rate", "1000", "--residence-duration", "100ms")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"limit-echo vs pkbench", "\nlimit-echo ", "\npkbench ", "check cpu_per_packet_ratio",
			"check residence_p50_us", "check residence_p99_us"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("scale json", func(t *testing.T) {
		// Three reflector processes (pkbench serve: 1 worker, 2 SO_REUSEPORT sockets, one
		// socket with 2 workers) each get 1,200 packets from 4 flows; every configuration
		// answers them, with its CPU time and residence measured.
		out, errOut, code := run(t, bin, "--json", "--log-level", "warn", "scale", "--rate", "4000", "--duration", "300ms",
			"--repeat", "1", "--flows", "4")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep scaleReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if len(rep.Configs) != 3 || rep.Configs[1].Sockets != 2 || rep.Configs[2].Workers != 2 || len(rep.Checks) != 4 {
			t.Fatalf("configs %+v checks %+v", rep.Configs, rep.Checks)
		}
		for _, sc := range rep.Configs {
			r := sc.Runs[0]
			if r.Sent != 1200 || r.Received == 0 || r.CPU <= 0 || r.PacketsPerCPUSecond <= 0 || r.ResidenceP50 <= 0 {
				t.Errorf("%s: %+v", sc.Name, r)
			}
		}
		if rep.Configs[0].Scaling != 1 {
			t.Errorf("one worker's scaling %v", rep.Configs[0].Scaling)
		}
	})

	t.Run("residence at two rates vs the stamping limit", func(t *testing.T) {
		out, errOut, code := run(t, bin, "--json", "--log-level", "warn", "reflector", "--limit-stamps",
			"--cmd", bin+" --log-level warn echo --stamp --listen 127.0.0.1:{port}",
			"--rate", "2000", "--duration", "200ms", "--no-search", "--residence-rate", "1000", "--residence-duration", "200ms",
			"--residence-also", "500", "--residence-slices", "2")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep loadgen.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		for _, tr := range []loadgen.TargetReport{rep.Limit, rep.Target} {
			// Two 100 ms slices per rate: the median one (of two, the second in p50 order)
			// represents the target.
			if len(tr.ExtraResidence) != 1 || tr.ExtraResidence[0].Rate != 500 || tr.ExtraResidence[0].Residence.Count != 50 ||
				tr.Residence == nil || tr.Residence.Residence.Count != 100 {
				t.Errorf("%s: extra residence %+v", tr.Name, tr.ExtraResidence)
			}
		}
		names := map[string]bool{}
		for _, c := range rep.Checks {
			names[c.Name] = true
		}
		if !names["residence_p50_vs_limit@1000pps"] || !names["residence_p50_vs_limit@500pps"] {
			t.Errorf("checks %+v", rep.Checks)
		}
	})

	t.Run("limit stamps json", func(t *testing.T) {
		out, errOut, code := run(t, bin, "--json", "--log-level", "warn", "reflector", "--limit-stamps",
			"--rate", "2000", "--duration", "200ms", "--no-search", "--residence-rate", "1000", "--residence-duration", "200ms")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var rep loadgen.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		if r := rep.Limit.Residence; r == nil || r.Residence.Count != 200 || r.Residence.P50 <= 0 {
			t.Errorf("limit residence %+v", r)
		}
		if r := rep.Target.Residence; r == nil || r.Residence.Count != 0 {
			t.Errorf("plain echo residence %+v", r)
		}
	})

	t.Run("load with residence", func(t *testing.T) {
		// A reflector stamping T3 − T2 = 9 µs; pkbench load must report it.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, err := udpsock.Listen(ctx, "udp4", "127.0.0.1:0", udpsock.Options{RxTimestamps: true})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			ms := make([]udpsock.Message, 16)
			for i := range ms {
				ms[i].Buf = make([]byte, 2048)
			}
			for {
				n, err := c.ReadBatch(ms)
				if err != nil {
					return
				}
				for i := 0; i < n; i++ {
					b := ms[i].Buf[:ms[i].N]
					timestamp.NTPFromTime(ms[i].RxTime).Put(b[16:24])
					timestamp.NTPFromTime(ms[i].RxTime.Add(9 * time.Microsecond)).Put(b[4:12])
				}
				if _, err := c.WriteBatch(ms[:n]); err != nil {
					return
				}
			}
		}()
		out, errOut, code := run(t, bin, "--json", "load", "--target", c.LocalAddr().String(), "--rate", "1000", "--duration", "200ms", "--wait", "1s")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var res loadgen.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		if res.Sent != 200 || res.Received != 200 || res.Residence.Count != 200 {
			t.Fatalf("%+v", res)
		}
		if d := res.Residence.P50 - 9*time.Microsecond; d < -2 || d > 2 {
			t.Errorf("residence p50 %v, want 9µs", res.Residence.P50)
		}
	})

	t.Run("reflector csv", func(t *testing.T) {
		out, errOut, code := run(t, bin, "--format", "csv", "--log-level", "warn", "reflector",
			"--rate", "2000", "--duration", "200ms", "--no-search", "--residence-rate", "1000", "--residence-duration", "100ms")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 || rows[0][0] != "target" || rows[1][0] != "limit-echo" || rows[2][0] != "echo" || rows[1][2] != "400" {
			t.Errorf("csv %q", rows)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"load", "--target", "192.0.2.1:862"},
			{"load"},
			{"load", "--target", "127.0.0.1:9", "--rate", "-5"},
			{"reflector", "--cmd", "bin/stampref --listen 127.0.0.1:862"},
		} {
			_, errOut, code := run(t, bin, args...)
			if code != 2 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, errOut)
			}
		}
	})
}

func TestCmdName(t *testing.T) {
	for in, want := range map[string]string{
		"bin/stampref --listen 127.0.0.1:{port}": "stampref",
		"twampd --light":                         "twampd",
		"  ":                                     "reflector",
	} {
		if got := cmdName(in); got != want {
			t.Errorf("cmdName(%q) = %q, want %q", in, got, want)
		}
	}
}
