#!/bin/sh
# dtrace-tree set-up and entry points, for a fresh Debian machine, as root.
#   ./run.sh demo   install everything, start the lab, show its chain
#   ./run.sh test   install everything, run lint, types and the whole test suite (real engine)
#   ./run.sh test unit   the fast lane: lint, types and the unit tests (no engine, no browser)
#   ./run.sh diagrams   install everything, start the lab, redraw diagrams/lab-*.svg from it
#   ./run.sh bench [serve|trace|ns]  install everything, run a benchmark, write its results in benchmarks/
#   ./run.sh image  install everything, build the container image (needs python:3.11-slim)
#   ./run.sh busy up|status|down   engines and hundreds of containers the tests did not start
#                   (benchmarks/busyhost.py): run `./run.sh test` beside them, then take them down
set -eu
cd "$(dirname "$0")"
COMMAND="$0 $*"

PACKAGES="docker.io busybox-static graphviz iproute2 util-linux psmisc strace time forkstat python3 python3-venv podman conmon crun catatonit uidmap rootlesskit slirp4netns systemd chromium chromium-driver"

install() {
    if [ "$(id -u)" != 0 ]; then
        echo "run.sh: needs root (it installs Debian packages and starts a Docker engine): sudo $COMMAND" >&2
        exit 3
    fi
    missing=""
    for pkg in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "run.sh: installing Debian packages:$missing" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    # editable_mode=compat: a plain .pth path entry; the default import-hook finder costs
    # ~50 ms at every start of the tool.
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' \
        --config-settings editable_mode=compat
    # Bytecode now, as pip does for a wheel: with PYTHONDONTWRITEBYTECODE set (some shells
    # and CI images set it), every start would compile the package again (~35 ms).
    .venv/bin/python -m compileall -q tracer
}

case "${1:-}" in
    demo)
        install
        .venv/bin/dtrace-tree lab up
        .venv/bin/dtrace-tree show
        ;;
    test)
        install
        shift
        if [ "${1:-}" = unit ]; then
            shift
            set -- tests/unit "$@"
        fi
        .venv/bin/ruff check tracer tests
        .venv/bin/ruff format --check tracer tests
        .venv/bin/mypy
        .venv/bin/pytest "$@"
        ;;
    diagrams)
        install
        .venv/bin/dtrace-tree lab up
        .venv/bin/dtrace-tree export -H unix:///run/dtrace-lab/docker.sock --svg -o diagrams/lab-architecture.svg
        .venv/bin/dtrace-tree export -H unix:///run/dtrace-lab/docker.sock --ns --svg -o diagrams/lab-namespaces.svg
        ;;
    bench)
        install
        shift
        case "${1:-}" in
            serve) shift; .venv/bin/python benchmarks/serve_bench.py "$@" ;;
            trace) shift; .venv/bin/python benchmarks/trace_bench.py "$@" ;;
            ns) shift; .venv/bin/python benchmarks/ns_bench.py "$@" ;;
            *) .venv/bin/python benchmarks/bench.py "$@" ;;
        esac
        ;;
    busy)
        install
        shift
        .venv/bin/python benchmarks/busyhost.py "$@"
        ;;
    image)
        install
        .venv/bin/dtrace-tree lab up >/dev/null
        if ! docker -H unix:///run/dtrace-lab/docker.sock build -f deploy/Dockerfile -t dtrace-tree:0.1.0 .; then
            echo "run.sh: the image was not built (no python:3.11-slim to pull here?); tests/integration/test_in_a_container.py proves the same run with the lab's image" >&2
            exit 5
        fi
        ;;
    *)
        echo "usage: $0 demo|test [unit]|diagrams|bench|busy|image" >&2
        exit 2
        ;;
esac
