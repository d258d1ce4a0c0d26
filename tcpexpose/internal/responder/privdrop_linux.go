package responder

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrPrivileges reports that the responder could not drop its privileges.
var ErrPrivileges = errors.New("responder: dropping privileges")

// errCgoCaps: capabilities kept because a cgo build cannot clear them on every thread.
var errCgoCaps = errors.New("responder: capabilities kept: this build uses cgo, which cannot clear them on every thread (build with CGO_ENABLED=0)")

// dropPrivileges gives up every privilege once the sockets and the firewall table are open
// (they keep working: the kernel checked the capabilities when they were opened). As root it
// becomes name (its uid, primary gid, no supplementary groups), which clears every
// capability; a non-root process (capabilities from setcap) clears its capabilities. It
// returns what it did, for the log. Go's Setuid/Setgid/Setgroups apply to every thread.
func dropPrivileges(name string) (string, error) {
	if os.Geteuid() != 0 {
		// File capabilities: clear them on every thread.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
			if e == syscall.ENOTSUP {
				// A cgo build: Go cannot change every thread (the package builds with
				// CGO_ENABLED=0); keep running, with a warning.
				return "", errCgoCaps
			}
			return "", fmt.Errorf("%w: capset on every thread: %v", ErrPrivileges, e)
		}
		return "capabilities cleared", checkNoCaps()
	}
	u, err := user.Lookup(name)
	if err != nil {
		return "", fmt.Errorf("%w: user %q: %v (--user \"\" keeps root)", ErrPrivileges, name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("%w: user %q: %v", ErrPrivileges, name, err)
	}
	if uid == 0 {
		return "", fmt.Errorf("%w: user %q is root (--user \"\" keeps root explicitly)", ErrPrivileges, name)
	}
	if err := syscall.Setgroups([]int{}); err != nil {
		return "", fmt.Errorf("%w: setgroups: %v", ErrPrivileges, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return "", fmt.Errorf("%w: setgid %d: %v", ErrPrivileges, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return "", fmt.Errorf("%w: setuid %d: %v", ErrPrivileges, uid, err)
	}
	return fmt.Sprintf("running as %s (uid %d, gid %d)", name, uid, gid), checkNoCaps()
}

// checkNoCaps verifies that no capability is left (permitted or effective) on this thread.
func checkNoCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: capget: %v", ErrPrivileges, err)
	}
	for _, d := range data {
		if d.Effective != 0 || d.Permitted != 0 {
			return fmt.Errorf("%w: capabilities left: %+v", ErrPrivileges, data)
		}
	}
	return nil
}
