"""What the throughput benchmark's parent and its mode processes share.

The parent (``throughput.py``) only orchestrates and samples memory, so it imports nothing heavy:
no Prefect, no Airlock engine. The mode processes (``modes.py``) import the engine and the
project's tools through the helpers at the end of this module.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from airlock.execute import StepResult
    from airlock.plan import Plan
    from airlock.registry import ToolRegistry
    from systems.crm import AccountChange

# The checkout whose flows, tasks, tools and engine are measured: this one, or the one named by
# throughput.py --project-dir (passed down to the mode processes in this variable).
PROJECT_ENV = "AIRLOCK_BENCH_PROJECT"
PROJECT_DIR = Path(os.environ.get(PROJECT_ENV) or Path(__file__).resolve().parents[1]).resolve()
PLAYBOOK = "playbooks/enrich_accounts.yaml"
SEED = 7  # the seed data/accounts.csv was generated with: the sample's mix of dirt
MIB = 1024 * 1024
VERSIONED = ("prefect", "great_expectations", "pandas", "sqlalchemy", "pydantic", "phonenumbers", "psutil")


# -- data ------------------------------------------------------------------------------------
def load_generator() -> ModuleType:
    """data/generate.py, loaded by path as its docstring asks."""
    spec = importlib.util.spec_from_file_location("airlock_bench_generate", PROJECT_DIR / "data" / "generate.py")
    if spec is None or spec.loader is None:
        raise RuntimeError("data/generate.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_dataset(records: int, path: Path, data_dir: Path | None = None, seed: int = SEED) -> None:
    """``records`` dirty accounts (same seed as data/*.csv). With ``data_dir``, the companies they are
    drawn from grow with ``records`` (data/generate.py ``scale_for``) so that accounts repeat a company
    as often as in the 2,000-account sample, and the larger reference and the taxonomy are written
    there for the tools to read (AIRLOCK_DATA_DIR); without it, they are drawn from the shipped
    5,000-company reference."""
    generate = load_generator()
    if data_dir is not None:
        generate.write_files(data_dir, records, seed, generate.scale_for(records), accounts=path)
        return
    reference = generate.generate_reference(seed)
    generate.write_csv(path, generate.ACCOUNT_COLUMNS, generate.generate_accounts(records, seed, reference))


def effective_chunk_size(records: int, preferred: int, max_chunks: int) -> int:
    """The chunk size Airlock picks (tasks/load.py ``chunk_size_for``), restated here so that the
    no-Prefect mode need not import Prefect; the Airlock mode checks the two agree."""
    return max(preferred, -(-records // max_chunks), 1)


# -- the machine -----------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model or platform.processor(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def versions(project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("airlock", *VERSIONED):
        try:
            found[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=project_dir, capture_output=True,
                                text=True, check=True).stdout.strip()
        # Tracked files only: a run's own output files in bench/results/ say nothing about the code measured.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_dir,
                               capture_output=True, text=True, check=True).stdout.strip()
        found["git"] = commit + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        found["git"] = "unknown"
    return found


# -- memory of the whole process tree --------------------------------------------------------
@dataclass
class MemoryPeak:
    tree_mib: float = 0.0  # this process + every descendant (mode processes, the Prefect server)
    mode_mib: float = 0.0  # the mode process and its descendants
    server_mib: float = 0.0  # the Prefect server and its descendants


CPU_GROUPS = ("mode", "children", "server")


@dataclass
class CpuTrack:
    """The CPU seconds of one window's processes as they grow: the mode process itself, its
    descendants (an Airlock run's worker processes and demo ticketing service) and the Prefect
    server's tree. A process that has ended keeps the CPU it was last seen with, so each group's
    total only grows. Where a run's process is busy all the time and its worker is not, this shows
    when the worker waits: the totals at the end do not."""

    started: float = field(default_factory=time.monotonic)
    last: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid -> (group, CPU seconds)
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (seconds in, totals)

    def add(self, now: float, seen: dict[int, tuple[str, float]]) -> None:
        self.last.update(seen)
        totals = dict.fromkeys(CPU_GROUPS, 0.0)
        for group, seconds in self.last.values():
            totals[group] += seconds
        self.samples.append((now - self.started, totals))


def cpu_timeline(samples: list[tuple[float, dict[str, float]]],
                 step: float = 1.0) -> list[tuple[float, dict[str, float]]]:
    """Each group's CPU as a percentage of one core over spans of about ``step`` seconds, from
    ``CpuTrack.samples``: (end of the span in seconds, group -> percent)."""
    rows: list[tuple[float, dict[str, float]]] = []
    if not samples:
        return rows
    since, before = samples[0]
    for at, totals in samples[1:]:
        if at - since >= step:
            rows.append((at, {g: 100 * (totals[g] - before[g]) / (at - since) for g in CPU_GROUPS}))
            since, before = at, totals
    return rows


@dataclass
class TreeSampler:
    """Samples the RSS of this process and all its descendants every ``interval`` seconds in a
    thread, keeping the maxima of the current window. RSS of separate processes is added up, so
    shared library pages count once per process: a slight overestimate, never an underestimate."""

    interval: float = 0.1
    server_pid: int | None = None
    mode_pid: int | None = None
    peak: MemoryPeak = field(default_factory=MemoryPeak)
    cpu: CpuTrack = field(default_factory=CpuTrack)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def window(self, mode_pid: int | None = None) -> None:
        """Start a new window (for one mode process)."""
        with self._lock:
            self.mode_pid = mode_pid
            self.peak = MemoryPeak()
            self.cpu = CpuTrack()
        self.sample()

    def read(self) -> MemoryPeak:
        self.sample()
        with self._lock:
            return MemoryPeak(**vars(self.peak))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        me = psutil.Process()
        try:
            procs = [me, *me.children(recursive=True)]
        except psutil.Error:
            return
        rss: dict[int, int] = {}
        parents: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for proc in procs:
            try:
                rss[proc.pid] = proc.memory_info().rss
                parents[proc.pid] = proc.ppid()
                times = proc.cpu_times()
                cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
        now = time.monotonic()
        with self._lock:
            groups = {pid: self._group(pid, parents) for pid in rss}
            self.cpu.add(now, {pid: (group, seconds) for pid, seconds in cpu.items()
                               if (group := groups[pid]) is not None})
            total = sum(rss.values())
            server = sum(v for pid, v in rss.items() if groups[pid] == "server")
            mode = sum(v for pid, v in rss.items() if groups[pid] in ("mode", "children"))
            self.peak.tree_mib = max(self.peak.tree_mib, total / MIB)
            self.peak.server_mib = max(self.peak.server_mib, server / MIB)
            self.peak.mode_mib = max(self.peak.mode_mib, mode / MIB)

    def _group(self, pid: int, parents: dict[int, int]) -> str | None:
        if pid == self.mode_pid:
            return "mode"
        if self._under(pid, self.mode_pid, parents):
            return "children"
        if self._under(pid, self.server_pid, parents):
            return "server"
        return None  # the benchmark's own process

    @staticmethod
    def _under(pid: int, root: int | None, parents: dict[int, int]) -> bool:
        while root is not None and pid in parents:
            if pid == root:
                return True
            pid = parents[pid]
        return pid == root


# -- a started Prefect server ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(prefect_home: Path) -> dict[str, str]:
    """The environment every Prefect process of the benchmark gets: its own PREFECT_HOME, quiet,
    no analytics."""
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("PREFECT_API_URL", None)
    return env


@dataclass
class PrefectServer:
    """``prefect server start`` on a free local port with its own PREFECT_HOME (SQLite)."""

    home: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    startup_seconds: float = 0.0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, timeout: float = 180.0) -> float:
        prefect = Path(sys.executable).with_name("prefect")
        command = [str(prefect) if prefect.exists() else "prefect", "server", "start", "--host", "127.0.0.1",
                   "--port", str(self.port), "--analytics-off"]
        env = base_env(self.home) | {"PREFECT_SERVER_API_HOST": "127.0.0.1",
                                     "PREFECT_SERVER_API_PORT": str(self.port)}
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with self.log_path.open("wb") as log:
            # Its own session, so stop() can end the server and the processes it spawned together.
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                self.startup_seconds = time.perf_counter() - started
                return self.startup_seconds
            time.sleep(0.1)
        raise RuntimeError(f"prefect server not healthy after {timeout:.0f} s; see {self.log_path}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def post(self, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(f"{self.api_url}{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def count(self, kind: str, body: dict[str, Any] | None = None) -> int:
        return int(self.post(f"/{kind}/count", body or {}))

    def settled_task_run_count(self, quiet_seconds: float = 2.0, timeout: float = 30.0) -> int:
        """Task runs reach the server as events, after the flow returns: wait until the count
        stops moving."""
        deadline = time.monotonic() + timeout
        last, since = self.count("task_runs"), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.count("task_runs")
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_seconds:
                break
        return last

    def log_findings(self) -> dict[str, int]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        needles = {"queue_full": "queue is full", "database_locked": "database is locked", "errors": "| ERROR"}
        return {name: text.count(needle) for name, needle in needles.items()}

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and the processes it started."""
        if self.process is None:
            return 0.0
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


def tree_cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system + descendants_cpu_seconds(pid)


def descendants_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the live processes below ``pid``, not by ``pid`` itself."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- helpers for the mode processes (these import the engine and the project) ----------------
def use_project() -> None:
    if str(PROJECT_DIR) not in sys.path:
        sys.path.insert(0, str(PROJECT_DIR))


def plan_for(registry: ToolRegistry, columns: list[str]) -> Plan:
    """The plan Airlock's ``plan`` task makes from the playbook (tasks/plan.py), without the store."""
    from airlock.plan_check import ensure_plan_ok
    from airlock.planning.rules import RulesPlanner
    from airlock.playbook import load_playbook

    playbook = load_playbook(PROJECT_DIR / PLAYBOOK)
    if playbook.plan is not None:
        return ensure_plan_ok(playbook.plan, registry)
    assert playbook.request is not None
    return RulesPlanner().plan(playbook.request, columns, playbook.effective_policy, registry)


def crm_changes(plan: Plan, run_id: str, records: list[dict[str, Any]],
                results: dict[str, StepResult]) -> list[AccountChange]:
    """The CRM write of every record whose steps all succeeded, with the idempotency key and values
    hash Airlock's ledger computes (no validation: the baselines write every complete proposal)."""
    from airlock.execute import failed_earlier
    from airlock.ledger import idempotency_key, write_inputs
    from airlock.validation.findings import values_hash
    from systems.crm import AccountChange

    # The CRM write only: the baselines leave out the ticket write (a REST call per account that needs
    # one), so Airlock end to end now does more work than they do.
    write = next(w for w in plan.writes if w.target == "crm")
    failed = failed_earlier(results)
    key = plan.dataset.key
    changes: list[AccountChange] = []
    for record in records:
        record_id = str(record[key])
        if record_id in failed:
            continue
        after = {name: results[b.step or ""].outputs[record_id].get(b.field or "") for name, b in plan.proposes.items()}
        values = write_inputs(write, record, after)
        changes.append(AccountChange(idempotency_key=idempotency_key(run_id, plan.hash, write, record_id),
                                     values_hash=values_hash(values), **values))
    return changes


def chunked(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[start:start + size] for start in range(0, len(records), size)]
