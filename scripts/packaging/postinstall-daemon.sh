#!/bin/sh
# Installed daemons are not enabled automatically; make systemd see the new unit.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
