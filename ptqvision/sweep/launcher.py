"""Run a grid of configs through submitit: one ``tools/quant.py`` job per config, each in its own work dir.

A sweep is a folder: ``<sweep>/<name>/`` is each run's work dir, ``<sweep>/status.json`` the state of
every job (queued, running, done, failed with its one-line reason), ``<sweep>/logs/<name>.log`` each
job's output, ``<sweep>/submitit/`` submitit's own files. Invoking the same sweep again picks up where
it stopped: a run that finished with the same resolved config is skipped, one that holds that config
but did not finish (killed, interrupted, failed) continues with ``--resume``, and a job that is still
queued or running (its driver or its process alive, or SLURM still holding it) is left to itself.
"""
from __future__ import annotations

import glob
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

from ..errors import ConfigError, PTQError
from . import job as job_module
from .job import QuantJob, finished, log_path, modify_status, read_status, same_config, update_job

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUANT_SCRIPT = os.path.join(ROOT, "tools", "quant.py")
SUBMITIT_DIR = "submitit"
# SLURM states in which a job may still run (UNKNOWN: sacct could not tell, so assume it may)
SLURM_ACTIVE = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "UNKNOWN", "READY")


@dataclass
class JobSpec:
    """One run of a sweep: its name (the work dir inside the sweep), config file, ``--cfg-options`` and
    the label of its row in a report (default: the method)."""

    name: str
    config: str
    options: list[str] = field(default_factory=list)
    label: str | None = None


@dataclass
class SweepSettings:
    """How the jobs run. ``gpus``: local, the number of GPUs used at once, one run per GPU (default: every
    visible CUDA device; 0 without CUDA); SLURM, at most that many runs at once, one GPU each (default:
    one GPU per run, no limit; 0: CPU jobs). ``jobs``: concurrent runs without GPUs (local default 1)."""

    launcher: str = "local"
    gpus: int | None = None
    jobs: int | None = None
    timeout_min: int = 3 * 24 * 60
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    slurm_extra: dict = field(default_factory=dict)
    wait: bool | None = None  # default: wait on the local executor, return after submitting on SLURM
    poll_s: float = 0.5
    python: str = sys.executable

    def check(self) -> None:
        """Raise ConfigError on settings that cannot work."""
        if self.launcher not in ("local", "slurm"):
            raise ConfigError(f"--launcher must be local or slurm, got {self.launcher!r}")
        for key in ("gpus", "jobs", "timeout_min", "cpus_per_task"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"{key} must be a non-negative integer, got {value!r}")
        if self.jobs == 0:
            raise ConfigError("jobs must be at least 1")


@dataclass
class Planned:
    """What a sweep will do with one job: ``run``, ``resume``, ``skip`` (finished), ``wait`` (queued or
    running elsewhere) or ``fail`` (its config does not resolve; ``reason`` says why)."""

    spec: JobSpec
    action: str
    config_text: str | None = None
    reason: str | None = None


def expand_configs(patterns: Sequence[str]) -> list[str]:
    """Return the config files named by directories (their ``*.py`` files) and glob patterns, in order."""
    out: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = sorted(p for p in glob.glob(os.path.join(pattern, "*.py"))
                           if not os.path.basename(p).startswith("_"))
        else:
            found = sorted(p for p in glob.glob(pattern) if p.endswith(".py"))
        if not found:
            raise ConfigError(f"no config file matches {pattern}")
        out += [p for p in found if p not in out]
    return out


def jobs_from_configs(configs: Sequence[str], options: Sequence[str] = ()) -> list[JobSpec]:
    """Return one job per config, named by the config's file name (``folder/name`` where two folders
    hold the same file name), all with the same ``--cfg-options``."""
    stems = [os.path.splitext(os.path.basename(c))[0] for c in configs]
    if len(set(stems)) < len(stems):
        stems = [f"{os.path.basename(os.path.dirname(os.path.abspath(c)))}/{s}" for c, s in zip(configs, stems)]
        if len(set(stems)) < len(stems):
            raise ConfigError("two configs of the sweep have the same folder and file name")
    return [JobSpec(s, c, list(options)) for s, c in zip(stems, configs)]


def default_sweep_dir(patterns: Sequence[str]) -> str:
    """Return ``work_dirs/<folder>`` for the folder of the first config directory or pattern."""
    first = patterns[0].rstrip("/")
    folder = first if os.path.isdir(first) else os.path.dirname(first)
    return os.path.join("work_dirs", os.path.basename(os.path.abspath(folder or ".")))


def _process_alive(host: str | None, pid: int | None, command: str | None = None) -> bool:
    """Return whether ``pid`` runs on ``host`` (a process on another host cannot be checked: assume so),
    and, where /proc tells, whether its command line holds ``command`` (a reused pid is another process)."""
    if pid is None:
        return False
    if host not in (None, socket.gethostname()):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive (nobody may reap it in a container)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        if command is not None:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            # empty while the process is still in exec (its arguments not set up yet): cannot tell
            return not cmdline or command.encode() in cmdline
    except (OSError, IndexError):
        pass
    return True


def job_alive(rec: dict, sweep_dir: str) -> bool:
    """Return whether a queued or running job may still run: its local job's process, its SLURM job, or,
    before it was submitted, the driver that queued it."""
    if rec.get("state") not in ("queued", "running"):
        return False
    job_id = rec.get("job_id")
    if job_id is None:
        owner = rec.get("owner") or {}
        if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
            return False  # queued by this very driver, which is planning again
        return _process_alive(owner.get("host"), owner.get("pid"))
    if rec.get("launcher") == "slurm":
        import submitit

        state = submitit.SlurmJob(folder=os.path.join(sweep_dir, SUBMITIT_DIR), job_id=str(job_id)).state
        return state.split()[0].upper() in SLURM_ACTIVE
    return _process_alive(rec.get("submit_host"), int(job_id), "submitit")  # the local job's controller


class Sweep:
    """A grid of runs in one sweep folder: ``Sweep(folder, jobs, settings).run()`` plans, submits, (waits)
    and returns the final records of its jobs; :meth:`plan` alone says what would be done."""

    def __init__(self, sweep_dir: str, jobs: Sequence[JobSpec], settings: SweepSettings | None = None) -> None:
        self.sweep_dir = os.path.abspath(sweep_dir)
        self.jobs = list(jobs)
        self.settings = settings or SweepSettings()
        self.settings.check()
        self.cwd = os.getcwd()
        names = [j.name for j in self.jobs]
        if len(set(names)) < len(names):
            raise ConfigError("two jobs of the sweep have the same name")
        for n in names:
            if not n or os.path.isabs(n) or ".." in n.split("/"):
                raise ConfigError(f"job name {n!r} is not a relative path inside the sweep")
        if not os.path.isfile(QUANT_SCRIPT):
            raise ConfigError(f"{QUANT_SCRIPT} not found: sweeps run from a ptqvision checkout")

    def work_dir(self, name: str) -> str:
        return os.path.join(self.sweep_dir, name)

    def plan(self, claim: bool = False) -> list[Planned]:
        """Return what the sweep would do with each job; with ``claim``, also queue the jobs it will run in
        the status file (under the lock, so that two drivers never take the same job)."""
        from ..config import dump_config, load_config

        texts: dict[str, str | PTQError] = {}
        for spec in self.jobs:  # resolving loads every config: done before taking the lock
            try:
                cfg, _ = load_config(spec.config, spec.options)
                texts[spec.name] = dump_config(cfg)
            except PTQError as exc:
                texts[spec.name] = exc
        host, pid = socket.gethostname(), os.getpid()

        def decide(status: dict) -> list[Planned]:
            status.setdefault("sweep", {"created": job_module.now(), "cwd": self.cwd})
            out = []
            for spec in self.jobs:
                rec = status["jobs"].get(spec.name, {})
                text = texts[spec.name]
                base = {"name": spec.name, "config": spec.config, "options": spec.options,
                        "label": spec.label, "cwd": self.cwd}
                if isinstance(text, PTQError):
                    p = Planned(spec, "fail", reason=str(text).strip().splitlines()[0])
                    new = {**base, "state": "failed", "reason": p.reason, "finished": job_module.now()}
                elif job_alive(rec, self.sweep_dir):
                    p, new = Planned(spec, "wait", text), None
                elif finished(self.work_dir(spec.name), text):
                    p = Planned(spec, "skip", text)
                    new = {**base, "state": "done", "reason": None, "skipped": True}
                else:
                    resume = same_config(self.work_dir(spec.name), text)
                    p = Planned(spec, "resume" if resume else "run", text)
                    new = {**base, "state": "queued", "reason": None, "queued": job_module.now(), "job_id": None,
                           "launcher": self.settings.launcher, "owner": {"host": host, "pid": pid},
                           "resume": resume, "pid": None}
                if new is not None and claim:
                    status["jobs"].setdefault(spec.name, {"name": spec.name}).update(new)
                out.append(p)
            return out

        try:
            if not claim:
                return decide(read_status(self.sweep_dir))
            return modify_status(self.sweep_dir, decide)
        except ValueError as exc:  # a status file that is not one
            raise ConfigError(str(exc)) from None

    def run(self) -> dict[str, dict]:
        """Run the sweep; return the status record of each of its jobs (by name)."""
        planned = self.plan(claim=True)
        todo = [p for p in planned if p.action in ("run", "resume")]
        waiting = [p for p in planned if p.action == "wait"]
        wait = self.settings.wait if self.settings.wait is not None else self.settings.launcher == "local"
        if self.settings.launcher == "local":
            self._run_local(todo, waiting)
        else:
            self._run_slurm(todo, waiting, wait)
        status = read_status(self.sweep_dir)["jobs"]
        return {j.name: status[j.name] for j in self.jobs}

    # -- jobs ------------------------------------------------------------------------------------------

    def _payload(self, p: Planned, env: dict[str, str]) -> dict:
        return {"name": p.spec.name, "sweep_dir": self.sweep_dir, "work_dir": self.work_dir(p.spec.name),
                "cwd": self.cwd, "config": p.spec.config, "options": list(p.spec.options),
                "config_text": p.config_text, "python": self.settings.python, "quant": QUANT_SCRIPT, "env": env}

    def _slots(self) -> list[int | None]:
        """Return one entry per concurrent local job: a GPU id, or None for a CPU job."""
        gpus = self.settings.gpus
        if gpus is None:
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus == 0:
            return [None] * (self.settings.jobs or 1)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        ids = [int(x) for x in visible.split(",")] if visible and all(
            x.strip().isdigit() for x in visible.split(",")) else list(range(gpus))
        if gpus > len(ids):
            raise ConfigError(f"--gpus {gpus} but only {len(ids)} GPUs are visible")
        return ids[:gpus]

    def _env(self, slots: int) -> dict[str, str]:
        """Return the environment the runs add: CPU runs side by side share the cores."""
        if "OMP_NUM_THREADS" in os.environ:
            return {}
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // slots))}

    def _settle(self, name: str, job) -> None:
        """Record a failure for a job whose process ended without recording how (it was killed, or the
        job itself failed before starting the run)."""
        rec = read_status(self.sweep_dir)["jobs"].get(name, {})
        if rec.get("state") not in ("queued", "running") or str(rec.get("job_id")) != str(job.job_id):
            return
        try:
            job.result()
            reason = "the job ended without recording a result"
        except Exception as exc:  # noqa: BLE001 - whatever ended the job, it is this job's failure reason
            reason = f"the job died: {_exception_line(exc)}"[:300]
        update_job(self.sweep_dir, name, {"state": "failed", "reason": reason, "finished": job_module.now(),
                                          "pid": None})

    def _adopted_done(self, waiting: list[Planned], queue: list[Planned]) -> None:
        """Forget the waited-on jobs that ended; queue those whose process is gone without an end."""
        status = read_status(self.sweep_dir)["jobs"]
        for p in list(waiting):
            rec = status.get(p.spec.name, {})
            if rec.get("state") in ("done", "failed"):
                waiting.remove(p)
            elif not job_alive(rec, self.sweep_dir):
                waiting.remove(p)
                resume = same_config(self.work_dir(p.spec.name), p.config_text)
                update_job(self.sweep_dir, p.spec.name, {
                    "state": "queued", "job_id": None, "launcher": self.settings.launcher, "resume": resume,
                    "owner": {"host": socket.gethostname(), "pid": os.getpid()}, "queued": job_module.now()})
                queue.append(Planned(p.spec, "resume" if resume else "run", p.config_text))

    def _run_local(self, todo: list[Planned], waiting: list[Planned]) -> None:
        import submitit

        _pickle_job_by_value()
        executor = submitit.LocalExecutor(folder=os.path.join(self.sweep_dir, SUBMITIT_DIR))
        executor.update_parameters(timeout_min=self.settings.timeout_min)
        slots = self._slots()
        env = self._env(len(slots)) if slots[0] is None else {}
        free, queue, inflight = list(slots), list(todo), {}
        host = socket.gethostname()
        try:
            while queue or inflight or waiting:
                while queue and free:
                    p, slot = queue.pop(0), free.pop(0)
                    executor.update_parameters(gpus_per_node=0 if slot is None else 1,
                                               visible_gpus=() if slot is None else (slot,))
                    job = executor.submit(QuantJob(), self._payload(p, env))
                    update_job(self.sweep_dir, p.spec.name, {"job_id": job.job_id, "submit_host": host,
                                                             "submitted": job_module.now(), "gpu": slot})
                    inflight[p.spec.name] = (job, slot)
                time.sleep(self.settings.poll_s)
                for name, (job, slot) in list(inflight.items()):
                    if job.done():
                        self._settle(name, job)
                        free.append(slot)
                        del inflight[name]
                if waiting:
                    self._adopted_done(waiting, queue)
        except KeyboardInterrupt:
            # The runs stop cleanly on SIGINT (state kept for --resume); the queued jobs stay queued.
            for job, _ in inflight.values():
                job.cancel(check=False)
            deadline = time.time() + 30
            while time.time() < deadline and not all(j.done() for j, _ in inflight.values()):
                time.sleep(0.2)
            for name, (job, _) in inflight.items():
                self._settle(name, job)
            raise

    def _run_slurm(self, todo: list[Planned], waiting: list[Planned], wait: bool) -> None:
        import submitit

        _pickle_job_by_value()
        s = self.settings
        executor = submitit.AutoExecutor(folder=os.path.join(self.sweep_dir, SUBMITIT_DIR), cluster="slurm")
        params = {"timeout_min": s.timeout_min, "gpus_per_node": 1 if s.gpus != 0 else 0, "name": "ptqvision-sweep",
                  "cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb, "slurm_partition": s.slurm_partition,
                  "slurm_account": s.slurm_account, "slurm_qos": s.slurm_qos,
                  "slurm_array_parallelism": s.gpus or s.jobs,  # at most this many runs at once
                  "slurm_additional_parameters": dict(s.slurm_extra) or None}
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})

        def submit(planned: list[Planned]) -> dict:
            if not planned:
                return {}
            with executor.batch():  # one job array
                jobs = [executor.submit(QuantJob(), self._payload(p, {})) for p in planned]
            for p, job in zip(planned, jobs):
                update_job(self.sweep_dir, p.spec.name, {"job_id": job.job_id, "submitted": job_module.now(),
                                                         "submit_host": socket.gethostname()})
            return {p.spec.name: job for p, job in zip(planned, jobs)}

        inflight = submit(todo)
        while wait and (inflight or waiting):
            time.sleep(s.poll_s)
            for name, job in list(inflight.items()):
                if job.done():
                    self._settle(name, job)
                    del inflight[name]
            if waiting:
                gone: list[Planned] = []
                self._adopted_done(waiting, gone)
                inflight.update(submit(gone))


def _exception_line(exc: BaseException) -> str:
    """Return the line that says what went wrong in submitit's report of a failed job: the last
    'SomeError: message' of the job's traceback, without the module path."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt): ", ln)]
    if not errors:
        return lines[0] if lines else type(exc).__name__
    name, _, message = errors[-1].partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {message}"


def _pickle_job_by_value() -> None:
    """Make submitit pickle the job's code itself (see :mod:`ptqvision.sweep.job`), not a reference to
    this package that the job's Python would have to import."""
    import cloudpickle

    from ..utils import atomic

    for module in (atomic, job_module):
        cloudpickle.register_pickle_by_value(module)


def status_table(sweep_dir: str, names: Sequence[str] | None = None) -> str:
    """Return the sweep's jobs as a table: state, attempts, time, and the result or the failure reason."""
    from ..report.cells import main_metric, read_results

    if not os.path.isfile(os.path.join(sweep_dir, job_module.STATUS_FILE)):
        raise ConfigError(f"no sweep in {sweep_dir} (no {job_module.STATUS_FILE})")
    try:
        jobs = read_status(sweep_dir)["jobs"]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    names = [n for n in (names or list(jobs)) if n in jobs]
    rows = []
    for name in names:
        rec = jobs[name]
        state = rec.get("state", "?")
        if state in ("queued", "running") and not job_alive(rec, sweep_dir):
            state += " (gone: rerun the sweep to resume)"
        detail = rec.get("reason") or ""
        if rec.get("state") == "done":
            res = read_results(os.path.join(sweep_dir, name, "results.json"))
            if res is not None:
                metric = main_metric(res)
                quant, fp = res["metrics"]["quant"].get(metric), res["metrics"].get("fp", {}).get(metric)
                detail = f"{metric} {quant:.2f}" + (f" (FP {fp:.2f})" if fp is not None else "")
                detail += " (already finished)" if rec.get("skipped") else ""
        rows.append((name, state, str(rec.get("attempts", 0)), _elapsed(rec), detail))
    head = ("job", "state", "attempts", "time", "result / reason")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[4]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4] for r in rows]
    counts = {}
    for name in names:
        counts[jobs[name].get("state", "?")] = counts.get(jobs[name].get("state", "?"), 0) + 1
    lines.append(f"{len(names)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def elapsed_s(rec: dict) -> float | None:
    """Return the seconds of a job's last attempt, up to now if it runs (None before it started)."""
    if not rec.get("started"):
        return None
    fmt = "%Y-%m-%dT%H:%M:%S"
    start = time.mktime(time.strptime(rec["started"], fmt))
    end = time.mktime(time.strptime(rec["finished"], fmt)) if rec.get("finished") else time.time()
    return max(0.0, end - start)


def _elapsed(rec: dict) -> str:
    """Return the time of a job's last attempt as h:mm:ss ('' when it has not started)."""
    seconds = elapsed_s(rec)
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def plan_table(planned: Sequence[Planned], sweep_dir: str) -> str:
    """Return what a sweep would do, one line per job (for ``--dry-run``)."""
    width = max([len(p.spec.name) for p in planned] + [3])
    what = {"run": "run", "resume": "resume (--resume)", "skip": "skip (finished with the same config)",
            "wait": "leave (queued or running elsewhere)", "fail": "fail"}
    lines = [f"{p.spec.name:<{width}}  {what[p.action]}" + (f": {p.reason}" if p.reason else "") for p in planned]
    lines.append(f"{len(planned)} jobs in {sweep_dir}; logs in {os.path.dirname(log_path(sweep_dir, 'x'))}")
    return "\n".join(lines)
