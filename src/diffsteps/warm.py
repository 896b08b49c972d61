"""Warm start-up: ``python -m diffsteps <command>`` runs in a fork of a process that has already imported torch.

Each job spends 3–8 s importing torch, torchvision and torch-fidelity before its first tensor operation. With a
job per (run, sampler, spacing) that is 8% of the default study's job-seconds cold (benchmarks/startup.py), so the
warm start is opt-in (``DIFFSTEPS_WARM=1``), for a session of many short commands. The command line stays what
the rules and DVC stages call, but the process it starts is a thin *client*:

1. it connects to a *server* for this interpreter (a Unix socket under ``$TMPDIR``), starting one if
   none is listening; the server imports the third-party libraries once (:data:`PRELOAD`), never the
   package itself, and exits after :data:`IDLE_SECONDS` without a request;
2. it hands over its argv, working directory, environment, ``sys.path`` and its stdin/stdout/stderr
   (the file descriptors themselves, so the job's log file receives the output);
3. the server forks; the child takes the client's state, imports ``diffsteps`` fresh from disk (so an
   edit is always what runs), runs :func:`diffsteps.cli.main` and reports its exit status.

The client forwards SIGINT/SIGTERM/SIGHUP to the child, and the child kills itself when the client's
connection drops (a job killed by Snakemake or SLURM leaves no worker writing behind it). Anything that
stops the hand-over before the child has started (no fork, no socket, a server that cannot start) runs
the command in this process instead, so the warm path changes when a command starts, never what it
does: the same seed gives the same bytes either way (tested). It is opt-in: ``DIFFSTEPS_WARM=1`` turns it on, and
``DIFFSTEPS_WARM_IDLE`` sets the server's idle lifetime (s). Each server logs one line per job it forked
beside its socket (``<key>.log``: time, pid, working directory, arguments). Inside a SLURM job (``SLURM_JOB_ID``
set) every command runs cold, in the job's own allocation.

The server is keyed by the interpreter, its ``sys.path`` and the environment variables read when the
libraries load (threads of OpenMP/BLAS, ``PYTHON*``), so a different venv, checkout or thread setting
gets its own server. A warm job's own CPU and memory are the child's: Snakemake's ``benchmark:`` files see the
client's (cold, the default, they measure the job itself), while every record's ``peak_memory_mb`` is measured in
the job's own process either way.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

#: what every command needs before its first tensor operation (torch-fidelity brings torchvision)
PRELOAD = ("numpy", "torch", "torch_fidelity", "scipy.linalg", "yaml", "jsonschema", "PIL.Image")
IDLE_SECONDS = float(os.environ.get("DIFFSTEPS_WARM_IDLE", 120))  # seconds a server waits for its next request
START_TIMEOUT = 120.0  # a server's imports on a loaded 2-core machine take up to ~15 s
#: environment variables read while the preloaded libraries load: a server serves only clients that agree on them
_LOAD_ENV = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "PYTHON", "LD_", "TORCH_", "CUDA_MODULE_LOADING")
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_CHUNK = 1 << 16


def enabled() -> bool:
    # Not inside a batch job (SLURM_JOB_ID): a server's fork runs outside the job that asked for it, so the job's
    # memory, CPUs, GPU and cgroup would not hold its work, and a server started by one job dies with that job.
    # A batch job pays its start-up once; its compute dwarfs it.
    # Opt-in: with a job per (run, sampler, spacing), start-up is 8% of the default study's job-seconds cold, and
    # a cold job is what Snakemake's benchmark: files can measure (they see a warm job's 20 MB client).
    return (os.environ.get("DIFFSTEPS_WARM", "0") == "1" and "SLURM_JOB_ID" not in os.environ
            and hasattr(os, "fork") and hasattr(socket, "send_fds") and hasattr(socket, "AF_UNIX"))


def _client_path() -> list[str]:
    """``sys.path`` without the working directory that ``python -m`` puts first (the child restores it)."""
    cwd = os.getcwd()
    return [p for i, p in enumerate(sys.path) if not (i == 0 and p in ("", cwd))]


def socket_path() -> Path:
    """The server socket of this interpreter, ``sys.path`` and load-time environment."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(_LOAD_ENV)}
    key = hashlib.sha256(json.dumps([sys.executable, _client_path(), env]).encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"diffsteps-warm-{os.getuid()}" / f"{key}.sock"


# ---- framing: newline-terminated JSON messages on a stream socket


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


class _Reader:
    def __init__(self, conn: socket.socket, buf: bytes = b""):
        self.conn, self.buf = conn, buf

    def message(self) -> dict | None:
        """The next message, or None at end of stream."""
        while b"\n" not in self.buf:
            chunk = self.conn.recv(_CHUNK)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


# ---- client


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        return conn
    except OSError:
        conn.close()
        return None


def _start_server(path: Path) -> socket.socket | None:
    """Connect to the server at ``path``, starting it first if none listens (one starter at a time)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        conn = _connect(path)
        if conn is not None:
            return conn
        with open(path.with_suffix(".log"), "ab") as log:
            # the server reads DIFFSTEPS_WARM_IDLE from the environment it inherits
            proc = subprocess.Popen([sys.executable, "-m", "diffsteps.warm", "--serve", str(path)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            conn = _connect(path)
            if conn is not None:
                return conn
            time.sleep(0.05)
        return None


def _delegate(conn: socket.socket, argv: list[str]) -> int | None:
    """Run ``argv`` in a fork of the server; None when the server did not start it (nothing ran)."""
    request = {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "path": sys.path}
    try:
        socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        reader = _Reader(conn)
        started = reader.message()
    except OSError:
        return None
    if not started or "pid" not in started:
        return None
    pid, received = started["pid"], []

    def forward(signum, frame):
        received.append(signum)
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    try:
        done = reader.message()
    except OSError:
        done = None
    if done is None or "exit" not in done:
        if received:
            return 128 + received[-1]
        print(f"diffsteps: the warm worker (pid {pid}) ended without an exit status", file=sys.stderr)
        return 1
    return int(done["exit"])


def main(argv: list[str]) -> int:
    """Run the command ``argv`` warm when possible, else in this process."""
    if enabled():
        path = socket_path()
        try:
            conn = _connect(path) or _start_server(path)
        except OSError:
            conn = None
        if conn is not None:
            with conn:
                code = _delegate(conn, argv)
            if code is not None:
                return code
    from .cli import main as cli_main

    return cli_main(argv)


def console() -> int:
    """The ``diffsteps`` console script: the same warm start as ``python -m diffsteps``."""
    return main(sys.argv[1:])


# ---- server


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """Become the client's process (fds 0–2, cwd, environment, sys.path), run the command, report, exit."""
    code = 1
    try:
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = request["path"]
        sys.argv = [sys.argv[0], *request["argv"]]
        for name in [m for m in sys.modules if m == "diffsteps" or m.startswith("diffsteps.")]:
            del sys.modules[name]  # the package as it is on disk now, not as the server found it
        _send(conn, {"pid": os.getpid()})

        def watchdog():  # the client went away (killed): so does this job
            try:
                while conn.recv(_CHUNK):
                    pass
            except OSError:
                pass
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watchdog, daemon=True).start()
        from diffsteps.cli import main as cli_main

        code = cli_main(request["argv"])
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            _send(conn, {"exit": int(code)})
        finally:
            os._exit(int(code))


def _receive(conn: socket.socket) -> tuple[dict, list[int]] | None:
    data, fds, _, _ = socket.recv_fds(conn, _CHUNK, 3)
    try:
        request = _Reader(conn, data).message() if data else None
    except (OSError, ValueError):
        request = None
    if request is None or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    return request, fds


def serve(path: Path, idle: float = IDLE_SECONDS) -> None:
    """Import :data:`PRELOAD`, listen at ``path`` (published atomically once ready) and fork one child per
    request until ``idle`` seconds pass without one."""
    for name in PRELOAD:
        importlib.import_module(name)
    if sys.modules["torch"].cuda.is_initialized():  # a CUDA context does not survive fork: serve nothing
        raise RuntimeError("CUDA was initialised while preloading; the warm server cannot fork safely")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    server.bind(str(tmp))
    server.listen(64)
    os.replace(tmp, path)
    mine = os.stat(path).st_ino
    server.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = server.accept()
            except socket.timeout:
                break
            conn.settimeout(None)
            got = _receive(conn)
            if got is None:
                conn.close()
                continue
            request, fds = got
            pid = os.fork()
            if pid == 0:
                server.close()
                _child(conn, request, fds)
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} pid {pid} in {request['cwd']}: {' '.join(request['argv'])}",
                  flush=True)
            for fd in fds:
                os.close(fd)
            conn.close()
    finally:
        try:
            if os.stat(path).st_ino == mine:
                os.unlink(path)
        except FileNotFoundError:
            pass


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="the warm-start server of `python -m diffsteps` (started by it)")
    ap.add_argument("--serve", required=True, type=Path, help="the socket to listen at")
    ap.add_argument("--idle", type=float, default=IDLE_SECONDS, help="seconds without a request before exiting")
    args = ap.parse_args()
    serve(args.serve, args.idle)
