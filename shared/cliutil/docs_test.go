package cliutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestDocsManGolden(t *testing.T) {
	code, stdout, stderr := runApp(t, newTestApp(&parsed{}, nil), "docs", "man")
	if code != 0 {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	golden(t, "probe.1", []byte(stdout))
	if !strings.HasPrefix(stdout, ".TH \"PROBE\" 1 ") {
		t.Errorf("man page header: %q", stdout[:min(len(stdout), 40)])
	}
	if strings.Contains(stdout, "docs") {
		t.Error("man page documents the hidden docs command")
	}
	if _, err := exec.LookPath("man"); err == nil {
		// Render it: groff must accept what md2man produced (warnings on stderr fail the test).
		p := filepath.Join(t.TempDir(), "probe.1")
		os.WriteFile(p, []byte(stdout), 0o644)
		out, err := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", p).CombinedOutput()
		if err != nil || strings.Contains(string(out), "warning") {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	}
}

func TestDocsManSection(t *testing.T) {
	app := newTestApp(&parsed{}, nil)
	SetManSection(app, 8)
	_, stdout, _ := runApp(t, app, "docs", "man")
	if !strings.HasPrefix(stdout, ".TH \"PROBE\" 8 ") {
		t.Errorf("daemon man page header: %q", stdout[:min(len(stdout), 40)])
	}
	_, stdout, _ = runApp(t, newTestApp(&parsed{}, nil), "docs", "--section", "5", "man")
	if !strings.HasPrefix(stdout, ".TH \"PROBE\" 5 ") {
		t.Errorf("--section 5 header: %q", stdout[:min(len(stdout), 40)])
	}
}

func TestDocsUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"docs"}, {"docs", "pdf"}, {"docs", "man", "bash"}, {"docs", "--section", "10", "man"}} {
		code, stdout, stderr := runApp(t, newTestApp(&parsed{}, nil), args...)
		if code != ExitUsage || stdout != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: code %d stdout %q stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestDocsCompletionsGolden(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := runApp(t, newTestApp(&parsed{}, nil), "docs", shell)
		if code != 0 {
			t.Fatalf("%s: code %d stderr %q", shell, code, stderr)
		}
		golden(t, "probe."+shell, []byte(stdout))
		if _, err := exec.LookPath(shell); err == nil {
			// Syntax check with the shell itself.
			flag := "-n"
			if shell == "fish" {
				flag = "--no-execute"
			}
			cmd := exec.Command(shell, flag)
			cmd.Stdin = strings.NewReader(stdout)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s %s: %v\n%s", shell, flag, err, out)
			}
		}
	}
}

func TestDocsManUsageText(t *testing.T) {
	app := NewApp("probe", "measure", "1")
	app.UsageText = "probe [flags] HOST[:PORT]\nprobe -l"
	app.Flags = append(app.Flags, &cli.BoolFlag{Name: "light", Aliases: []string{"l"}, Usage: "TWAMP Light"})
	man, err := ManPage(app, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(man, ".SH SYNOPSIS\nprobe [flags] HOST[:PORT]\n.br\nprobe \\-l\n.SH OPTIONS") {
		t.Errorf("synopsis from UsageText missing:\n%s", man)
	}
	if strings.Contains(man, "(default: false)") {
		t.Errorf("bool flags show (default: false):\n%s", man)
	}
}
