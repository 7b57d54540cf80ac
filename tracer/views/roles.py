"""Who each traced process is: its role and its container (pure).

Each program a process ran (an `Image` of its `Life`, tracer/views/lives.py) gets a role and
a container id:

- by its own argv: a shim's (`parse_shim`, as `show` reads it: `-id`; `start`/`delete` make
  the transient ones), conmon's (podman's monitor: `-c`), runc's or crun's (the subcommand
  after the global flags, the id among the positionals; crun's roles are named as runc's),
  dockerd, containerd, docker-proxy, and the CLIs each runtime names (`Look.cli`: docker,
  podman, ctr, nerdctl, crictl);
- by the tree, where argv says nothing or is gone: runc init forks its stages with
  CLONE_PARENT, so `runc:[1:CHILD]` and `runc:[2:INIT]` name runc create (or runc exec) as
  their parent; a child of runc create or runc exec that goes through a `runc:[` stage is
  `runc-init` until it execs, then the container's init (`container-init`, or `docker-init`
  with --init) or, under runc exec, an `exec-process`; one that does not is a `hook`
  (libnetwork-setkey); descendants of a container's processes are `container-process` (or
  `exec-process`); what dockerd forks and execs is a `dockerd-helper` (set-ipv6), or
  docker-proxy, or containerd;
- a process forked during the trace carries, before its exec, the role of what it execs (the
  fork of containerd that becomes `shim-start` is shim-start from its fork), except runc
  init's stages, which are runc-init until they exec.

The container id comes from runc's and the shim's arguments and is inherited by descendants
(at fork). Ids are 64 hex digits, or None.
"""

from __future__ import annotations

from collections.abc import Mapping

from tracer.kernel.procfs import program
from tracer.model.trace import KnownContainer
from tracer.runtimes import cli_programs
from tracer.runtimes.containerd import parse_shim
from tracer.runtimes.containerd.shim import OCI_RUNTIMES
from tracer.runtimes.podman import parse_conmon
from tracer.views.lives import RUNC_STAGE, Image, Life, Lives, container_id, runc_args

RUNC_ROLES = {"create": "runc-create", "start": "runc-start", "exec": "runc-exec",
              "kill": "runc-kill", "delete": "runc-delete", "init": "runc-init"}  # fmt: skip
ENGINE_SIDE = {"dockerd", "dockerd-helper", "containerd", "shim-start", "shim", "shim-delete",
               "conmon", "runc-create", "runc-init", "runc-start", "runc-exec", "runc-kill",
               "runc-delete", "runc", "hook", "docker-proxy"}  # fmt: skip
IN_CONTAINER = {"container-init", "docker-init", "container-process", "exec-process"}
DAEMONS = {"dockerd": "dockerd", "containerd": "containerd", "docker-proxy": "docker-proxy"}
MONITORS = ("shim", "conmon")  # the parent of a container's init and of its exec processes


def engine_program(name: str) -> bool:
    """Is this program (argv[0]'s basename, or a comm) one of the engines' own? The
    recorder keeps whatever such a program does, and what it starts."""
    return (
        name in DAEMONS
        or name in OCI_RUNTIMES
        or name == "conmon"
        or name.startswith("containerd-shim")
    )


# -- roles -------------------------------------------------------------------------------------

STARTERS = ("runc-create", "runc-exec")  # what forks runc init's stages (CLONE_PARENT)


class _Roles:
    """Roles and containers for every image, parents first (they flow down the tree)."""

    def __init__(self, lives: Lives, containers: Mapping[str, KnownContainer]) -> None:
        self.lives = lives
        self.containers = containers
        self.by_init = {c.init_pid: c for c in containers.values() if c.init_pid}
        self.by_pid = {c.shim_pid: c for c in containers.values() if c.shim_pid}
        self.by_pid.update({p: c for c in containers.values() for p in c.proxies})
        for cid, c in containers.items():
            if c.namespaces and container_id(cid):
                lives.inits[cid] = c.namespaces
        self.done: set[int] = set()

    def run(self) -> None:
        for life in self.lives.all:
            self.visit(life)

    def visit(self, life: Life) -> None:
        if id(life) in self.done:
            return
        self.done.add(id(life))
        if life.parent is not None:
            self.visit(life.parent)
        for i in range(1, len(life.images)):  # its execs first: image 0 may take their role
            self.exec_role(life, i)
        self.first_role(life)
        for img in life.images:
            if img.role in ("container-init", "docker-init") and img.container and img.namespaces:
                self.lives.inits.setdefault(img.container, img.namespaces)

    def exec_role(self, life: Life, i: int) -> None:
        img = life.images[i]
        parent = _parent_image(life)
        prole = parent.role if parent else "other"
        img.container = parent.container if parent else None
        if prole in STARTERS and life.staged:
            if _stage_named_before(life, img.ts) and not _is_runc_init(img):
                if prole == "runc-exec":
                    img.role = "exec-process"
                else:
                    img.role = "docker-init" if img.program == "docker-init" else "container-init"
            else:
                img.role = "runc-init"
            return
        own = _by_argv(img)
        if own is None and img.cmdline is None:
            own = _without_argv(prole, img, life)
        if own is None:
            img.role = _inherit(prole, life)
            return
        img.role, cid = own
        img.container = cid or img.container
        if img.role == "docker-proxy" and life.pid in self.by_pid:  # show's proxy -> container
            img.container = container_id(self.by_pid[life.pid].id)
        if img.role == "runc" and img.cmdline is None:
            self.infer_runc(life, img)

    def first_role(self, life: Life) -> None:
        """Image 0: a process that existed before, by its argv, its place in `show`'s
        topology or its parent; a child forked during the trace, by what it becomes."""
        img = life.images[0]
        parent = _parent_image(life)
        prole = parent.role if parent else "other"
        img.container = parent.container if parent else None
        if not img.inherited:
            own = _by_argv(img)
            if own is not None:
                img.role, cid = own
                img.container = cid or img.container
            elif life.pid in self.by_init:
                img.role = "docker-init" if img.program == "docker-init" else "container-init"
                img.container = container_id(self.by_init[life.pid].id)
            elif prole in MONITORS:
                img.role = "exec-process"  # a shim's child that is not its init: docker exec's
            else:
                img.role = _inherit(prole, life)
            if life.pid in self.by_pid:
                img.container = container_id(self.by_pid[life.pid].id)
            if img.role == "runc" and img.cmdline is None:
                self.infer_runc(life, img)
            return
        if prole in STARTERS and life.staged:
            img.role = "runc-init"
        elif len(life.images) > 1:
            after = life.images[1]
            img.role, img.inferred = after.role, after.inferred
            if after.role in ENGINE_SIDE and after.container:
                img.container = after.container
        elif life.command or (prole == "other" and _in_command(life)):
            img.role = "cli"
        elif prole in ("container-init", "docker-init"):
            img.role = "container-process"  # the init's fork (httpd serving a request)
        else:
            img.role = prole

    def infer_runc(self, life: Life, img: Image) -> None:
        """runc whose argv was gone before it could be read: which one, from what it did.
        One that forked runc init's stages is runc create, or runc exec when the process it
        started execs in the namespaces of the container's init. A childless one: under a
        shim delete, runc delete; under the shim, runc start if the container's init exec'd
        while it ran, runc delete if the init had ended before it began, runc kill if the init
        ended after; else it stays `runc`."""
        img.inferred = True
        staged = [c for c in life.children if c.staged]
        if staged:
            known = self.lives.inits.get(img.container or "") or {}
            joined = "mnt" in known and any(
                i.ts is not None and i.namespaces and i.namespaces.get("mnt") == known["mnt"]
                for c in staged
                for i in c.images
            )
            img.role = "runc-exec" if joined else "runc-create"
            return
        parent = _parent_image(life)
        if parent is not None and parent.role == "shim-delete":
            img.role = "runc-delete"
            return
        if parent is None or parent.role not in MONITORS:
            return
        end = life.exit.ts if life.exit else None
        for other in self.lives.all:
            if other.staged and other.images[0].container == img.container:
                for i in other.images[1:]:
                    if (
                        i.ts is not None
                        and _stage_named_before(other, i.ts)
                        and life.first <= i.ts
                        and (end is None or i.ts <= end + 1_000_000)
                    ):
                        img.role = "runc-start"  # the init exec'd while it ran (or just after)
                        return
        ended = self.init_end(img.container)
        if ended is not None:
            img.role = "runc-delete" if ended <= life.first else "runc-kill"

    def init_end(self, cid: str | None) -> int | None:
        """When the container's init ended during the trace (from the raw events: the roles
        of later lives are not known yet)."""
        known = self.containers.get(cid or "")
        for life in self.lives.all:
            if life.exit is None or life.images[0].container not in (None, cid):
                continue
            if known is not None and life.known is not None and life.pid == known.init_pid:
                return life.exit.ts
            parent = _parent_image(life)
            if (
                life.staged
                and parent is not None
                and parent.role == "runc-create"
                and life.images[0].container == cid
            ):
                return life.exit.ts
        return None


def assign(lives: Lives, containers: Mapping[str, KnownContainer]) -> Lives:
    """Give every image of every life its role and container (in place)."""
    _Roles(lives, containers).run()
    return lives


def _parent_image(life: Life) -> Image | None:
    if life.parent is None:
        return None
    return life.parent.images[min(life.parent_image, len(life.parent.images) - 1)]


def _stage_named_before(life: Life, ts: int | None) -> bool:
    """Had it taken a runc:[ stage name before ts (its exec)?"""
    return ts is not None and any(c.startswith(RUNC_STAGE) for t, c, _ in life.comms if t <= ts)


def _is_runc_init(img: Image) -> bool:
    if img.cmdline is None:
        return img.comm in ("runc", "exe") or img.comm.startswith(RUNC_STAGE)
    return runc_args(img.cmdline)[0] == "init"


def _by_argv(img: Image) -> tuple[str, str | None] | None:
    """The role (and container id) argv alone gives, or None."""
    argv = img.cmdline
    if argv is None:
        if img.comm.startswith(RUNC_STAGE):
            return "runc-init", None
        if img.comm == "runc":
            return "runc", None  # which one: infer_runc, from the tree
        return None
    shim = parse_shim(argv)
    if shim is not None:
        role = "shim" if not shim.transient else "shim-" + argv[-1]
        return role, container_id(shim.id)
    conmon = parse_conmon(argv)
    if conmon is not None:
        return "conmon", container_id(conmon.id)
    prog = program(argv)
    if prog in OCI_RUNTIMES:
        sub, positional = runc_args(argv)
        cid = next((p for p in positional if container_id(p)), None)
        return RUNC_ROLES.get(sub or "", "runc"), cid
    if prog in DAEMONS:
        return DAEMONS[prog], None
    if prog in cli_programs():
        return "cli", None
    return None


def _without_argv(prole: str, img: Image, life: Life) -> tuple[str, str | None] | None:
    """What a program whose argv was gone before it could be read most likely was, from its
    parent (docs/CONTAINERS.md §3): a shim start runs only the shim, a shim only
    runc; containerd runs other things too (unpigz), so only a `containerd-shim` comm (a
    zombie's) says shim start, or shim delete when it started nothing that stayed."""
    img.inferred = True
    if prole == "shim-start":
        return "shim", None
    if prole in ("shim", "shim-delete", "conmon"):
        return "runc", None
    if prole == "containerd":  # by what it ran in turn: the shim, or runc delete
        argvs = [i.cmdline for c in life.children for i in c.images[1:] if i.cmdline]
        for a in argvs:
            shim = parse_shim(a)
            if shim is not None and not shim.transient:
                return "shim-start", container_id(shim.id)
        for a in argvs:
            if program(a) == "runc":
                cid = next((p for p in runc_args(a)[1] if container_id(p)), None)
                return "shim-delete", cid
        if img.comm.startswith("containerd-shim"):
            return "shim-delete", None
    img.inferred = False
    return None


def _inherit(prole: str, life: Life) -> str:
    """The role of a program that argv does not name, from the role of its parent."""
    if prole in ("runc-create", "runc-exec", "runc-start", "hook"):
        return "hook"  # runc runs the OCI hooks (libnetwork-setkey) as its children
    if prole in ("container-init", "docker-init", "container-process"):
        return "container-process"
    if prole == "exec-process":
        return "exec-process"
    if prole in ("dockerd", "dockerd-helper"):
        return "dockerd-helper"  # dockerd re-executing itself (set-ipv6), and the like
    if prole == "cli" or _in_command(life):
        return "cli"
    return "other"


def _in_command(life: Life | None) -> bool:
    seen = 0
    while life is not None and seen < 10_000:
        if life.command:
            return True
        life, seen = life.parent, seen + 1
    return False
