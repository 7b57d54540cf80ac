"""The stacks and extra engines of the lab beside its own Docker engine: a stack's packages
(debs), a second and a socket-activated dockerd on the lab's containerd (extras), and a rootless
engine (rootless)."""
