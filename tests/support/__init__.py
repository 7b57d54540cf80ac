"""What the tests build and share, by topic; fixtures stay in the conftest files.

- cli: the CLI run as a user runs it (in this process or as a whole process), its one-line
  errors, what a command imports, the CLI as an unprivileged user
- hosts: snapshots of made-up hosts (processes as /proc shows them)
- topologies: model objects of made-up hosts, the recorded lab, diagrams' DOT edges
- argv: untrusted command lines (hypothesis strategies)
- recordings: made-up proc-connector recordings for trace
- trees: recorded host trees on disk (cgroupfs, Docker's overlay2 data root)
- lab: the lab's real engines: what `show --json` says of them, throw-away containers,
  namespaces and liveness of real processes
- waiting: wait_for, the one way to wait for something to happen
- serve: a real `dtrace-tree serve` process and requests to it
- browser: a real headless Chromium driven over WebDriver
- cri: a minimal CRI client (real pods on the lab's containerd)
- schemas: the tool's JSON documents checked against docs/schemas/ (run_cli, invoke and
  serve's client check every --json document they get)
"""
