"""The planner in a worker process: ``plan`` off the daemon's GIL, with its HiGHS model kept warm.

The daemon's event loop (fast loop, OCPP, API) and a planner thread share one GIL: on 2 cores at
500 chargers a plan took 2–3x longer while the loop was busy (a connect storm, sheds), and the
loop's cycles waited on the planner's Python parts. :class:`PlanWorker` runs the planner in a
child process that keeps
the :class:`~controller.planner.state.PlannerState` — and so the live HiGHS model — from one
request to the next. The child is a fresh interpreter (``subprocess``, never ``fork``: the daemon
has threads) that imports only this module and the planner, connected by a socket pair carrying
pickled messages (:class:`multiprocessing.connection.Connection`). Not ``multiprocessing``'s
``spawn``: on POSIX it starts a third process, the resource tracker (13 MB of RSS at 500
chargers), for semaphores the worker never uses.

Per request the parent pickles the snapshot *without* its site (about half of the bytes at 500
chargers); the site goes along only when it is another object than the one last sent (a reload,
a restarted worker). Every wait is bounded: :meth:`PlanWorker.plan` raises :class:`WorkerFailed`
when the worker died, did not answer within the timeout, or raised — and then the process is
already gone (killed); :meth:`start` makes a fresh one with an empty state. The child ignores
SIGINT and SIGHUP (a terminal's Ctrl-C, a reload are for the daemon), exits when its pipe closes
(the daemon died) and on ``stop``.

Blocking and thread-safe enough for one caller thread doing :meth:`plan` while another may call
:meth:`kill` or :meth:`stop`; no asyncio and no daemon import here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

from controller.model.site import Site
from controller.model.snapshot import Plan, Snapshot
from controller.planner.state import PlannerState

PlanFn = Callable[[Snapshot, PlannerState], tuple[Plan, PlannerState]]


def product_plan(snapshot: Snapshot, state: PlannerState) -> tuple[Plan, PlannerState]:
    """:func:`controller.planner.plan`, imported where it runs: the daemon holds a worker without
    loading the solver stack (NumPy, HiGHS) itself — the worker process does (:func:`_serve`)."""
    from controller.planner.plan import plan

    return plan(snapshot, state)


FailureKind = Literal["start", "died", "hung", "raised"]
STOP_WAIT_S = 2.0
PROTOCOL = pickle.HIGHEST_PROTOCOL


class WorkerFailed(Exception):
    """The worker did not plan this request; it has been killed (``kind`` says why)."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(f"planner worker {kind}: {detail}")
        self.kind: FailureKind = kind
        self.detail = detail


@dataclass(frozen=True)
class WorkerAnswer:
    plan: Plan
    planner_ms: float
    """The planner call inside the worker, wall time [ms]."""
    planner_cpu_ms: float
    """CPU time of the worker over that call [ms] (wall well above it: the worker waited for a core)."""
    wait_ms: float
    """What the caller waited: request pickled and sent → answer received and unpickled [ms]."""
    site_sent: bool
    """The site went along with this request (first request, a reload, a restarted worker)."""


def _serve(conn: Connection, planner: PlanFn) -> None:
    """The child: answer plan requests until the pipe closes or ``stop`` comes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from controller.planner.highs import new_highs

    new_highs()  # load HiGHS (and swallow its banner) before saying ready
    import controller.planner.plan  # noqa: F401 - the planner's imports, before the first request too

    state = PlannerState()
    site: Site | None = None
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the daemon is gone
        if msg[0] == "stop":
            return
        _, seq, new_site, fields, reset = msg
        if new_site is not None:
            site = new_site
        if reset:
            state = PlannerState()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if site is None:
                raise RuntimeError("no site sent")
            result, state = planner(Snapshot(site=site, **fields), state)
            reply: tuple[Any, ...] = (
                "ok",
                seq,
                result,
                (time.perf_counter() - t0) * 1e3,
                (time.process_time() - c0) * 1e3,
            )
        except Exception as exc:  # the parent plans this cycle itself and restarts us
            state = PlannerState()
            reply = ("error", seq, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return


CHILD_CODE = "import sys; from controller.planner.worker import child_main; child_main(int(sys.argv[1]))"
"""What the child interpreter runs: this module's :func:`child_main` on the inherited socket."""


def child_main(fd: int) -> None:
    """The child's entry point: the first message names the planner (and, for a planner defined in
    a script, that script: run again as ``__mp_main__``, as ``spawn`` would), then :func:`_serve`."""
    conn = Connection(fd)
    try:
        main_path, path = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    sys.path[:0] = [p for p in path if p not in sys.path]
    if main_path is not None:
        main = types.ModuleType("__mp_main__")
        main.__dict__.update(runpy.run_path(main_path, run_name="__mp_main__"))
        sys.modules["__main__"] = sys.modules["__mp_main__"] = main
    planner = pickle.loads(conn.recv_bytes())
    _serve(conn, planner)


class _Child:
    """The child process, with the few calls :class:`PlanWorker` makes of it."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()

    def join(self, timeout_s: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout_s)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def terminate(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.terminate()


def _child_env() -> dict[str, str]:
    """The daemon's environment, with this package's root first on ``PYTHONPATH`` (the child must
    import :mod:`controller` before it learns the rest of the parent's ``sys.path``)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _spawn(planner: PlanFn) -> tuple[_Child, Connection]:
    """Start a child interpreter on one end of a socket pair; send it what it needs to plan."""
    main_path = None
    if getattr(planner, "__module__", None) == "__main__":  # a script's own function
        main_path = getattr(sys.modules.get("__main__"), "__file__", None)
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD_CODE, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            env=_child_env(),
        )
    except BaseException:
        ours.close()
        theirs.close()
        raise
    theirs.close()  # the child's end lives in the child only: its death closes the pair
    conn = Connection(ours.detach())
    try:
        conn.send_bytes(pickle.dumps((main_path, list(sys.path)), PROTOCOL))
        conn.send_bytes(pickle.dumps(planner, PROTOCOL))
    except BaseException:
        conn.close()
        proc.kill()
        proc.wait(STOP_WAIT_S)
        raise
    return _Child(proc), conn


class PlanWorker:
    """One planner process (see the module docstring).

    ``planner``: the function run in the child (module-level, so it pickles by name) — the
    product's :func:`controller.planner.plan`; tests pass a slow or failing one.
    ``start_timeout_s``: how long a fresh process may take to import and say it is ready.
    """

    def __init__(self, planner: PlanFn = product_plan, *, start_timeout_s: float = 20.0) -> None:
        self._planner = planner
        self.start_timeout_s = start_timeout_s
        self._proc: _Child | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._started_mono = 0.0
        self._site_sent: Site | None = None
        self._reset = False
        self._seq = 0
        self._lock = threading.Lock()
        self.starts = 0

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self._proc is None else int(self._proc.pid)

    @property
    def running(self) -> bool:
        return self._proc is not None and bool(self._proc.is_alive())

    @property
    def ready(self) -> bool:
        return self._ready and self.running

    def start(self) -> None:
        """Spawn the process if there is none (returns at once; it says ready when it has
        imported). Raises :class:`WorkerFailed` ``start`` when it cannot be spawned."""
        with self._lock:
            if self._proc is not None:
                return
            try:
                proc, conn = _spawn(self._planner)
            except Exception as exc:
                raise WorkerFailed("start", f"{type(exc).__name__}: {exc}") from exc
            self._proc, self._conn = proc, conn
            self._ready = False
            self._site_sent = None
            self._reset = False
            self._started_mono = time.monotonic()
            self.starts += 1

    def reset(self) -> None:
        """The next request starts from an empty PlannerState (a reload: the model's shape may
        have changed) and sends the site again."""
        self._reset = True
        self._site_sent = None

    def kill(self) -> None:
        """End the process now (SIGKILL), forget it; :meth:`start` makes a new one."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc, self._conn, self._ready, self._site_sent = None, None, False, None
        if proc is not None:
            if proc.is_alive():
                proc.kill()
            proc.join(STOP_WAIT_S)
        if conn is not None:
            conn.close()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Ask the process to exit, wait up to ``timeout_s``, then kill it (bounded)."""
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc, self._conn, self._ready, self._site_sent = None, None, False, None
        if proc is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        proc.join(timeout_s)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout_s)
        if conn is not None:
            conn.close()

    # --- planning -----------------------------------------------------------------------------
    def wait_ready(self, timeout_s: float) -> bool:
        """Wait (bounded) for a started process to say it is ready."""
        conn, proc = self._conn, self._proc
        if conn is None or proc is None:
            return False
        if self._ready:
            return bool(proc.is_alive())
        try:
            if not conn.poll(max(0.0, timeout_s)):
                return False
            msg = conn.recv()
        except (EOFError, OSError):
            return False
        self._ready = isinstance(msg, tuple) and msg[:1] == ("ready",)
        return self._ready

    def plan(self, snapshot: Snapshot, timeout_s: float) -> WorkerAnswer:
        """Plan ``snapshot`` in the worker, waiting at most ``timeout_s`` for the answer (plus
        ``start_timeout_s`` for a process still starting). Starts the process if there is none.
        On any failure the process is killed and :class:`WorkerFailed` raised."""
        if self._proc is None:
            self.start()
        if not self._ready:
            left = self.start_timeout_s - (time.monotonic() - self._started_mono)
            if not self.wait_ready(left):
                failure = self._failure("start", f"not ready within {self.start_timeout_s:g} s")
                self.kill()
                raise failure
        conn = self._conn
        if conn is None:
            raise WorkerFailed("died", "stopped")
        t0 = time.perf_counter()
        site = snapshot.site
        send_site = site is not self._site_sent
        fields = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot) if f.name != "site"}
        self._seq += 1
        seq = self._seq
        try:
            # pickled here, in the caller's thread; a dead child answers EPIPE at once
            conn.send_bytes(pickle.dumps(("plan", seq, site if send_site else None, fields, self._reset), PROTOCOL))
            self._reset = False
            if send_site:
                self._site_sent = site
            if not conn.poll(timeout_s):
                failure = self._failure("hung", f"no answer within {timeout_s:.1f} s")
                self.kill()
                raise failure
            msg = conn.recv()
        except pickle.PickleError as exc:  # this snapshot does not pickle: not the worker's fault
            self.kill()  # it may hold half a request
            raise WorkerFailed("raised", f"{type(exc).__name__}: {exc}") from exc
        except (EOFError, OSError) as exc:
            failure = self._failure("died", type(exc).__name__)
            self.kill()
            raise failure from exc
        if msg[0] == "error" or msg[1] != seq:
            failure = WorkerFailed("raised", str(msg[2]) if msg[0] == "error" else "answer out of order")
            self.kill()
            raise failure
        _, _, result, planner_ms, cpu_ms = msg
        return WorkerAnswer(result, float(planner_ms), float(cpu_ms), (time.perf_counter() - t0) * 1e3, send_site)

    def _failure(self, kind: FailureKind, detail: str) -> WorkerFailed:
        proc = self._proc
        if proc is not None and kind == "died":
            proc.join(STOP_WAIT_S)  # its pipe closed: let it finish dying to read its exit code
        if proc is not None and not proc.is_alive():
            code = proc.exitcode
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return WorkerFailed("died", f"{how} ({detail})" if kind != "died" else how)
        return WorkerFailed(kind, detail)
