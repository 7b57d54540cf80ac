"""What Linux tells us: /proc read through pinned fds, unix sockets, sock_diag, mountinfo,
all through one `HostRoot` (where the host's / and /proc are)."""
