package spp

import (
	"context"
	"fmt"
)

func openLive(cfg *Config, iface string, c classifier) (producer, error) {
	return nil, fmt.Errorf("%s: live capture on %s: not available in this build", c.point, iface)
}

func runSlave(ctx context.Context, cfg *Config) error {
	return fmt.Errorf("slave: live capture on %s: not available in this build", cfg.MonIface)
}
