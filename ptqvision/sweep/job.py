"""One run of a sweep as a submitit job: ``tools/quant.py`` in a subprocess, its state in the status file.

This module and :mod:`ptqvision.utils.atomic` use the standard library (and submitit) only, and the
launcher pickles them by value into each job: the job's process then imports neither torch nor the
``ptqvision`` its Python would find, so it starts in a fraction of a second and runs this checkout's
``tools/quant.py`` whatever is installed. The status file is shared by the jobs and every driver of
the sweep, so each change is a read-modify-write under an exclusive lock, written atomically.
"""
from __future__ import annotations

import ast
import copy
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from submitit.helpers import Checkpointable, DelayedSubmission

from ..utils.atomic import atomic_write_json

STATUS_FILE = "status.json"
LOCK_FILE = ".status.lock"
LOG_DIR = "logs"
STATES = ("queued", "running", "done", "failed")
# Settings that change no number; a finished run with other values of them is still the same run.
COSMETIC = (("eval", "progress"),)


def now() -> str:
    """Return the local time as an ISO-8601 string (seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def log_path(sweep_dir: str, name: str) -> str:
    """Return the file that collects a job's output (every attempt, appended)."""
    return os.path.join(sweep_dir, LOG_DIR, name.replace("/", "__") + ".log")


@contextmanager
def status_lock(sweep_dir: str) -> Iterator[None]:
    """Hold the sweep's exclusive lock for the duration of the block."""
    os.makedirs(sweep_dir, exist_ok=True)
    with open(os.path.join(sweep_dir, LOCK_FILE), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_status(sweep_dir: str) -> dict:
    """Return the sweep's status, ``{'jobs': {name: record}}``; empty when the sweep has none yet."""
    path = os.path.join(sweep_dir, STATUS_FILE)
    try:
        with open(path) as f:
            status = json.load(f)
    except FileNotFoundError:
        return {"jobs": {}}
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the sweep status {path}: {exc}") from None
    if not isinstance(status, dict) or not isinstance(status.get("jobs"), dict):
        raise ValueError(f"{path} is not a sweep status file (no 'jobs' mapping)")
    return status


def modify_status(sweep_dir: str, fn: Callable[[dict], Any]) -> Any:
    """Apply ``fn`` to the status under the lock (it changes the dict in place), write it back atomically;
    return what ``fn`` returns."""
    with status_lock(sweep_dir):
        status = read_status(sweep_dir)
        out = fn(status)
        atomic_write_json(os.path.join(sweep_dir, STATUS_FILE), status)
        return out


def update_job(sweep_dir: str, name: str, fields: dict | None = None,
               fn: Callable[[dict], dict] | None = None) -> dict:
    """Merge ``fields`` and then what ``fn(record)`` returns into job ``name``'s record; return a copy of it."""
    def change(status: dict) -> dict:
        rec = status["jobs"].setdefault(name, {"name": name})
        rec.update(fields or {})
        if fn is not None:
            rec.update(fn(rec))
        rec["updated"] = now()
        return dict(rec)

    return modify_status(sweep_dir, change)


def parse_config_text(text: str) -> dict:
    """Return the settings of a resolved config file as :func:`ptqvision.config.dump_config` writes it."""
    out = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


def _comparable(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    for section, key in COSMETIC:
        if isinstance(cfg.get(section), dict):
            cfg[section].pop(key, None)
    return cfg


def same_config(work_dir: str, config_text: str) -> bool:
    """Return whether ``work_dir/config.py`` (written when a run starts) holds this resolved config."""
    try:
        with open(os.path.join(work_dir, "config.py")) as f:
            old = parse_config_text(f.read())
        new = parse_config_text(config_text)
    except (OSError, SyntaxError, ValueError):
        return False
    return _comparable(old) == _comparable(new)


def finished(work_dir: str, config_text: str) -> bool:
    """Return whether a run of this resolved config has finished in ``work_dir``. A run writes config.py
    first and results.json last, and a sweep resumes a work dir only with the config it holds, so the two
    files together mean that this config ran to the end there."""
    return os.path.isfile(os.path.join(work_dir, "results.json")) and same_config(work_dir, config_text)


def failure_reason(returncode: int, output: str) -> str:
    """Return the one-line reason of a failed run from its exit code and output: tools/quant.py's
    ``error: ...`` line when there is one."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    if returncode == 130:
        return "interrupted"
    if returncode < 0:
        try:
            return f"killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}: {lines[-1][:300] if lines else 'no output'}"


class QuantJob(Checkpointable):
    """The callable submitted for every run: ``QuantJob()(spec)`` returns the job's final status record.

    ``spec`` holds name, sweep_dir, work_dir, cwd, config, options, config_text (the resolved config
    the sweep planned), python and quant (the interpreter and tools/quant.py to run), env (extra
    variables). A work dir that already holds this config resumes with ``--resume``; one that finished
    it is left alone. On a timeout or preemption submitit calls :meth:`checkpoint`: the run is stopped
    (its state after the last finished unit is on disk) and the job requeued, and the requeued job
    resumes it.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {"_child": None}  # the running child is not part of the job's state

    def __call__(self, spec: dict) -> dict:
        sweep_dir, name, work_dir = spec["sweep_dir"], spec["name"], spec["work_dir"]
        if finished(work_dir, spec["config_text"]):
            return update_job(sweep_dir, name, {"state": "done", "reason": None, "finished": now(), "skipped": True})
        resume = same_config(work_dir, spec["config_text"])
        host = socket.gethostname()
        env = {**os.environ, **spec.get("env", {})}
        threads = env.get("OMP_NUM_THREADS", "")
        rec = update_job(sweep_dir, name, fn=lambda r: {
            "state": "running", "started": now(), "finished": None, "reason": None, "skipped": False,
            "host": host, "resume": resume, "attempts": r.get("attempts", 0) + 1,
            "threads": int(threads) if threads.isdigit() else None})  # OMP_NUM_THREADS of the run
        cmd = [spec["python"], spec["quant"], spec["config"], "--work-dir", work_dir]
        cmd += ["--resume"] if resume else []
        cmd += ["--cfg-options", *spec["options"]] if spec["options"] else []
        path = log_path(sweep_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab") as log:
            log.write(f"=== attempt {rec['attempts']}, {now()} on {host}: {shlex.join(cmd)}\n".encode())
            log.flush()
            start = log.tell()
            self._child = subprocess.Popen(cmd, cwd=spec["cwd"], stdout=log, stderr=subprocess.STDOUT, env=env)
            update_job(sweep_dir, name, {"pid": self._child.pid})
            returncode = self._wait()
        with open(path, "rb") as f:
            f.seek(max(start, os.path.getsize(path) - 65536))
            output = f.read().decode("utf-8", errors="replace")
        ok = returncode == 0 and os.path.isfile(os.path.join(work_dir, "results.json"))
        return update_job(sweep_dir, name, {
            "state": "done" if ok else "failed", "finished": now(), "returncode": returncode, "pid": None,
            "reason": None if ok else failure_reason(returncode, output)})

    def _wait(self) -> int:
        """Wait for the run; an interrupt (Ctrl-C, or the executor cancelling the job) goes to the run,
        which then stops cleanly and exits 130, and is recorded as such."""
        child = self._child

        def forward(signum: int, _frame: Any) -> None:
            if child.poll() is None:
                child.send_signal(signum)

        previous = signal.signal(signal.SIGINT, forward)
        try:
            # poll, not wait(): a blocking wait holds the child's lock, and submitit's timeout handler
            # (checkpoint, below) runs in this thread and must be able to see the child end
            while child.poll() is None:
                time.sleep(0.2)
            return child.returncode
        finally:
            signal.signal(signal.SIGINT, previous)

    def checkpoint(self, spec: dict) -> DelayedSubmission:
        """Stop the run and return this job for requeueing (called by submitit on a timeout or preemption)."""
        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)  # the run stops at once; its last finished unit is on disk
            deadline = time.time() + 20  # submitit's local executor kills the job 30 s after its signal
            while child.poll() is None and time.time() < deadline:
                time.sleep(0.2)
            if child.poll() is None:
                child.kill()
        update_job(spec["sweep_dir"], spec["name"], {"state": "queued", "pid": None,
                                                     "reason": "requeued after a timeout or preemption"})
        return DelayedSubmission(QuantJob(), spec)
