"""Parts of Docker (moby) that tracer/runtimes/docker.py builds its engines with: the
namespaces it shares and why (namespaces.py), and a rootless dockerd's rootlesskit, network
helper and user namespace (rootless.py)."""
