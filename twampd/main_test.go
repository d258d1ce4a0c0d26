package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/probekit/probekit/shared/cliutil"
	"github.com/probekit/probekit/twampd/internal/server"
)

func parse(t *testing.T, args ...string) (server.Config, int) {
	t.Helper()
	app := newApp()
	app.Writer, app.ErrWriter = io.Discard, io.Discard
	var cfg server.Config
	app.Action = func(c *cli.Context) error {
		var err error
		cfg, err = config(c)
		return err
	}
	return cfg, cliutil.Run(context.Background(), app, append([]string{"twampd"}, args...))
}

// The socket scheduling flags map onto the server configuration (--realtime implies
// --blocking) and are checked like stampref's.
func TestSchedulingFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		busyPoll time.Duration
		realtime int
		blocking bool
	}{
		{nil, 0, 0, false},
		{[]string{"--light", "--busy-poll", "200us"}, 200 * time.Microsecond, 0, false},
		{[]string{"--realtime", "10"}, 0, 10, true},
		{[]string{"--light", "--blocking"}, 0, 0, true},
		{[]string{"--blocking", "--busy-poll", "1ms"}, time.Millisecond, 0, true},
	} {
		cfg, code := parse(t, tc.args...)
		if code != 0 || cfg.BusyPoll != tc.busyPoll || cfg.Realtime != tc.realtime || cfg.Blocking != tc.blocking {
			t.Errorf("%v: exit %d, busy-poll %v realtime %d blocking %v", tc.args, code, cfg.BusyPoll, cfg.Realtime, cfg.Blocking)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, bad := range [][]string{{"extra"}, {"--busy-poll", "2s"}, {"--busy-poll", "-1ms"},
		{"--busy-poll", "100us", "--realtime", "10"}, {"--realtime", "100"}, {"--realtime", "-1"},
		{"--refwait", "0s"}, {"--light", "-a", "OA"}, {"--test-ports", "9-1"}} {
		if _, code := parse(t, bad...); code != cliutil.ExitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, cliutil.ExitUsage)
		}
	}
}
