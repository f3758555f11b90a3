"""Records per second for the same enrichment done three ways: a plain loop (the limit), raw Prefect,
and Airlock end to end against a started Prefect server; with the peak memory of the process tree.

    .venv/bin/python bench/throughput.py [--records 10000 100000] [--companies scaled|sample]
                                         [--chunk-size N] [--json OUT]

Each mode runs in a process of its own over the same generated CSV (data/generate.py, the sample's
seed and mix of dirt, drawn from companies scaled to the size unless --companies sample). See
bench/README.md for what each mode measures.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    CPU_GROUPS,
    PROJECT_DIR,
    PROJECT_ENV,
    SEED,
    PrefectServer,
    TreeSampler,
    base_env,
    cpu_timeline,
    machine_info,
    remove_tree,
    versions,
)

MODES = ("plain", "prefect", "prefect-walked", "airlock")
DEFAULT_MODES = ("plain", "prefect", "airlock")
PREFECT_MODES = ("prefect", "prefect-walked", "airlock")
LABELS = {"plain": "plain loop", "prefect": "raw Prefect", "prefect-walked": "raw Prefect, walked",
          "airlock": "Airlock end to end"}
PASS_RECORDS, PASS_RATE, PASS_MEMORY_MIB, AIM_RATIO = 100_000, 5_000.0, 1.5 * 1024, 0.5
MODES_SCRIPT = Path(__file__).resolve().with_name("modes.py")
CHILD_TIMEOUT = 3600


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="airlock-bench-"))
        self.sampler = TreeSampler(interval=args.sample_interval)
        self.server: PrefectServer | None = None
        self.results: list[dict[str, Any]] = []
        self.server_info: dict[str, Any] = {}
        self.closed = False
        self.child: subprocess.Popen[bytes] | None = None  # the mode process running now
        self.project_dir = (args.project_dir or PROJECT_DIR).resolve()

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        if self.server is not None:
            self.server.stop()
            self.server = None
        self.sampler.stop()
        if self.args.keep:
            print(f"kept {self.root}", file=sys.stderr)
        else:
            remove_tree(self.root)

    def child_env(self, mode: str, records: int) -> dict[str, str]:
        env = base_env(self.root / "prefect-client")
        for name in ("AIRLOCK_DATABASE_URL", "AIRLOCK_CRM_URL", "AIRLOCK_HOME"):
            env.pop(name, None)  # SQLite in a fresh home, whatever the shell says
        project = self.project_dir
        env[PROJECT_ENV] = env["AIRLOCK_PROJECT_DIR"] = str(project)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project / "src"), env.get("PYTHONPATH")]))
        env["AIRLOCK_USER"] = "bench"
        if self.args.chunk_size:
            env["AIRLOCK_CHUNK_SIZE"] = str(self.args.chunk_size)
        env.pop("AIRLOCK_DATA_DIR", None)
        if self.args.companies == "scaled":
            env["AIRLOCK_DATA_DIR"] = str(self.data_dir(records))
        if mode == "airlock":
            env["AIRLOCK_HOME"] = str(self.root / f"airlock-{records}")
        if mode in PREFECT_MODES:
            assert self.server is not None
            env["PREFECT_API_URL"] = self.server.api_url
        return env

    def spawn(self, argv: list[str], env: dict[str, str], name: str,
              profile: Path | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.root / f"{name}.log"
        command = [sys.executable, str(MODES_SCRIPT), *argv]
        if profile is not None:
            # Samples only the thread holding the GIL: where each (GIL-bound) process spends its time,
            # worker processes included (their stacks start with a "process" frame).
            command = [self.args.py_spy_binary, "record", "--gil", "--subprocesses", "--rate", "100", "--format", "raw",
                       "--output", str(profile), "--", *command]
        with log.open("wb") as handle:
            process = subprocess.Popen(command, env=env, cwd=self.project_dir, stdout=handle, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        self.child = process
        return process, log

    def data_dir(self, records: int) -> Path:
        """The reference data every mode's tools read at this size (--companies scaled)."""
        return self.root / f"data-{records}"

    # -- steps -------------------------------------------------------------------------------
    def generate(self, records: int) -> Path:
        path = self.root / f"accounts-{records}.csv"
        started = time.perf_counter()
        scaled = ["--data-dir", str(self.data_dir(records))] if self.args.companies == "scaled" else []
        process, log = self.spawn(["generate", "--records", str(records), "--input", str(path), *scaled],
                                  self.child_env("plain", records), f"generate-{records}")
        if process.wait(timeout=CHILD_TIMEOUT) != 0:
            raise RuntimeError(f"generating {records} records failed:\n{_tail(log)}")
        print(f"generated {records:,} accounts in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return path

    def start_server(self) -> None:
        self.server = PrefectServer(home=self.root / "prefect-server", log_path=self.root / "prefect-server.log")
        seconds = self.server.start()
        assert self.server.process is not None
        self.sampler.server_pid = self.server.process.pid
        time.sleep(1.0)  # let its services settle before sampling its resting memory
        self.sampler.window()
        self.server_info = {"port": self.server.port, "startup_seconds": round(seconds, 2),
                            "idle_rss_mib": round(self.sampler.read().server_mib, 1), "database": "sqlite"}
        print(f"prefect server healthy on :{self.server.port} after {seconds:.1f} s", file=sys.stderr)

    def run_mode(self, mode: str, records: int, csv: Path) -> dict[str, Any]:
        out = self.root / f"{mode}-{records}.json"
        workdir = self.root / f"{mode}-{records}"
        before = self.server.count("task_runs") if self.server and mode != "plain" else 0
        server_cpu = self.server.cpu_seconds() if self.server else 0.0
        children_cpu = _children_cpu_seconds()
        print(f"running {LABELS[mode]} at {records:,} records ...", file=sys.stderr)
        started = time.perf_counter()
        profile = None
        if self.args.py_spy and mode in self.args.profile_modes:
            self.args.py_spy.mkdir(parents=True, exist_ok=True)
            profile = self.args.py_spy / f"{mode}-{records}.txt"
        process, log = self.spawn([mode, "--input", str(csv), "--workdir", str(workdir), "--out", str(out)],
                                  self.child_env(mode, records), f"{mode}-{records}", profile)
        self.sampler.window(process.pid)
        try:
            code = process.wait(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        peak = self.sampler.read()
        self.write_cpu_timeline(self.root / f"cpu-{mode}-{records}.csv")
        result: dict[str, Any] = {"mode": mode, "size": records, "process_seconds": time.perf_counter() - started,
                                  "memory": {k: round(v, 1) for k, v in asdict(peak).items()},
                                  "profiled": profile is not None,
                                  "cpu_seconds": {"mode": round(_children_cpu_seconds() - children_cpu, 2),
                                                  "server": round((self.server.cpu_seconds() if self.server
                                                                   else 0.0) - server_cpu, 2)}}
        if code != 0 or not out.exists():
            result["error"] = f"exit {code}: {_tail(log)}"
            print(f"  FAILED: {result['error']}", file=sys.stderr)
            return result
        result.update(json.loads(out.read_text()))
        result["records_per_second"] = result["records"] / result["wall_seconds"]
        if self.server is not None and mode != "plain":
            result["task_runs_recorded"] = self.server.settled_task_run_count() - before
        print(f"  {result['records_per_second']:,.0f} records/s, {result['wall_seconds']:.1f} s, "
              f"peak tree {peak.tree_mib:,.0f} MiB", file=sys.stderr)
        return result

    def write_cpu_timeline(self, path: Path) -> None:
        """The mode's CPU second by second (``bench/timeline.py`` prints it from a kept folder)."""
        rows = cpu_timeline(self.sampler.cpu.samples)
        lines = ["seconds," + ",".join(f"{group}_pct" for group in CPU_GROUPS)]
        lines += [f"{at:.1f}," + ",".join(f"{shares[g]:.0f}" for g in CPU_GROUPS) for at, shares in rows]
        path.write_text("\n".join(lines) + "\n")

    def run(self) -> dict[str, Any]:
        self.sampler.start()
        sizes = sorted(set(self.args.records))
        modes = [m for m in MODES if m in self.args.modes]
        csvs = {n: self.generate(n) for n in sizes}
        # The plain loops run before the server exists, so their tree holds no idle server.
        if "plain" in modes:
            self.results += [self.run_mode("plain", n, csvs[n]) for n in sizes]
        if set(PREFECT_MODES) & set(modes):
            self.start_server()
            for n in sizes:
                self.results += [self.run_mode(m, n, csvs[n]) for m in PREFECT_MODES if m in modes]
            assert self.server is not None
            self.server_info["log_findings"] = self.server.log_findings()
        return self.summary(sizes)

    def summary(self, sizes: list[int]) -> dict[str, Any]:
        # Profiled runs are slowed by the profiler: they count for neither the ratios nor the pass mark.
        by = {(r["mode"], r["size"]): r for r in self.results if not r.get("profiled")}
        verdicts: dict[str, Any] = {}
        plans = {r["plan_hash"] for r in self.results if "plan_hash" in r}
        for n in sizes:
            plain, airlock = by.get(("plain", n), {}), by.get(("airlock", n), {})
            if "records_per_second" in plain and "records_per_second" in airlock:
                ratio = airlock["records_per_second"] / plain["records_per_second"]
                verdicts[str(n)] = {"airlock_to_plain": round(ratio, 3), "aim_met": ratio >= AIM_RATIO}
        top = by.get(("airlock", PASS_RECORDS), {})
        pass_mark: dict[str, Any] = {"records": PASS_RECORDS, "min_records_per_second": PASS_RATE,
                                     "max_tree_mib": PASS_MEMORY_MIB, "measured": "records_per_second" in top}
        if pass_mark["measured"]:
            pass_mark.update({
                "records_per_second": round(top["records_per_second"], 1), "tree_mib": top["memory"]["tree_mib"],
                "conserved": top["conserved"],
                "holds": top["records_per_second"] >= PASS_RATE and top["memory"]["tree_mib"] < PASS_MEMORY_MIB
                and top["conserved"],
            })
        return {"machine": machine_info(), "versions": versions(self.project_dir), "seed": SEED,
                "project_dir": str(self.project_dir), "companies": self.args.companies,
                "sample_interval_seconds": self.args.sample_interval, "server": self.server_info,
                "results": self.results, "ratios": verdicts, "pass_mark": pass_mark,
                "same_plan_everywhere": len(plans) <= 1, "plan_hashes": sorted(plans)}


def _children_cpu_seconds() -> float:
    """CPU time of the child processes waited for so far (each mode process once it has ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _tail(path: Path, lines: int = 25) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def render(summary: dict[str, Any]) -> str:
    m, v = summary["machine"], summary["versions"]
    out = [
        f"machine: {m['cpu_model']}, {m['logical_cores']} logical / {m['physical_cores']} physical cores, "
        f"{m['memory_gib']} GiB RAM, Python {m['python']}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "companies: " + ("scaled with the record count (5,000 reference companies per 2,000 accounts), so accounts "
                         "repeat a company as often as in the sample" if summary.get("companies") == "scaled" else
                         "the shipped 5,000-company reference at every size, so repeats grow with size"),
    ]
    if summary["server"]:
        s = summary["server"]
        out.append(f"prefect server (SQLite): healthy after {s['startup_seconds']:.1f} s, idle RSS "
                   f"{s['idle_rss_mib']:,.0f} MiB; log: {s.get('log_findings', {})}")
    header = (f"{'records':>8}  {'mode':<20} {'records/s':>9} {'wall s':>7} {'setup s':>7} {'peak tree MiB':>13} "
              f"{'mode MiB':>8} {'server MiB':>10} {'CPU s mode/server':>17} {'chunks':>6}  task runs")
    out += ["", header, "-" * len(header)]
    for r in summary["results"]:
        if "error" in r:
            out.append(f"{r['size']:>8,}  {LABELS[r['mode']]:<20} FAILED: {r['error'].splitlines()[-1][:80]}")
            continue
        mem = r["memory"]
        runs = (f"{r['task_runs_recorded']}/{r['expected_task_runs']}" if "task_runs_recorded" in r else "-")
        label = LABELS[r["mode"]] + ("*" if r.get("profiled") else "")
        cpu = f"{r['cpu_seconds']['mode']:.1f}/{r['cpu_seconds']['server']:.1f}"
        out.append(f"{r['size']:>8,}  {label:<20} {r['records_per_second']:>9,.0f} "
                   f"{r['wall_seconds']:>7.2f} {r['setup_seconds']:>7.2f} {mem['tree_mib']:>13,.0f} "
                   f"{mem['mode_mib']:>8,.0f} {mem['server_mib']:>10,.0f} {cpu:>17} {r['chunks']:>6}  {runs}")
    if any(r.get("profiled") for r in summary["results"]):
        out.append("* run under py-spy: slower than unprofiled, not for quoting")
    out.append("")
    for r in summary["results"]:
        if r["mode"] == "plain" and "breakdown" in r:
            b = r["breakdown"]
            out.append(f"plain loop {r['size']:,}: read CSV {b['read_csv']:.2f} s, tools {b['tools']:.2f} s, "
                       f"CRM writes {b['crm_writes']:.2f} s ({r['crm_applied']:,} rows)")
    for r in summary["results"]:
        if r["mode"] == "airlock" and "counts" in r:
            counts = ", ".join(f"{k} {n:,}" for k, n in r["counts"].items())
            out.append(f"Airlock {r['size']:,}: {counts}; accounted {r['accounted']:,} of {r['records']:,} -> "
                       f"{'conserved' if r['conserved'] else 'NOT CONSERVED'}; report stored: {r['report_stored']}; "
                       f"CRM writes applied {r['crm_applied']:,}")
            if "timed_cpu_seconds" in r:  # results recorded before it was measured have none
                cpu, wall = r["timed_cpu_seconds"], r["wall_seconds"]
                out.append(f"Airlock {r['size']:,} CPU while timed: the run's process {cpu['run_process']:.1f} s "
                           f"(busy {cpu['run_process'] / wall:.0%} of the {wall:.1f} s; its garbage collector "
                           f"{cpu['collector']:.2f} s), its worker processes and ticketing service "
                           f"{cpu['children']:.1f} s ({cpu['children'] / wall:.0%})")
    for size, ratio in summary["ratios"].items():
        out.append(f"Airlock / plain loop at {int(size):,}: {ratio['airlock_to_plain']:.0%} "
                   f"(aim >= {AIM_RATIO:.0%}: {'met' if ratio['aim_met'] else 'NOT met'})")
    if not summary["same_plan_everywhere"]:
        out.append(f"WARNING: the modes ran different plans {summary['plan_hashes']}: the playbook or planner changed")
    p = summary["pass_mark"]
    if p["measured"]:
        out.append(f"pass mark (>= {PASS_RATE:,.0f} records/s end to end at {PASS_RECORDS:,}, < 1.5 GiB, conserved): "
                   f"{p['records_per_second']:,.0f} records/s, {p['tree_mib']:,.0f} MiB -> "
                   f"{'HOLDS' if p['holds'] else 'DOES NOT HOLD'}")
    else:
        out.append(f"pass mark: not measured (needs the Airlock mode at {PASS_RECORDS:,} records)")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000], help="dataset sizes")
    parser.add_argument("--companies", choices=["scaled", "sample"], default="scaled",
                        help="scaled: the reference and the unknown companies grow with --records, so accounts "
                        "repeat a company as often as in the 2,000-account sample (default); sample: every size "
                        "draws from the shipped 5,000-company reference, so repeats grow with size")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="preferred records per chunk for every mode (AIRLOCK_CHUNK_SIZE; default Airlock's)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(DEFAULT_MODES),
                        help="prefect-walked (off by default, slow): raw Prefect passing data as Airlock does")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--sample-interval", type=float, default=0.1, help="seconds between RSS samples")
    parser.add_argument("--project-dir", type=Path, default=None,
                        help="measure another checkout (its flows, tasks, tools and src/ engine); default: this one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores, CSVs)")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                        help="record py-spy profiles (GIL holder, collapsed stacks) of --profile-modes into DIR; "
                             "profiled runs are slower: do not quote their timings")
    parser.add_argument("--profile-modes", nargs="+", choices=MODES, default=["airlock"])
    parser.add_argument("--py-spy-binary", default=os.environ.get("PY_SPY", "py-spy"),
                        help="default: $PY_SPY or py-spy")
    args = parser.parse_args(argv)
    bench = Bench(args)
    atexit.register(bench.close)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        summary = bench.run()
    finally:
        bench.close()
    print(render(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    failed = any("error" in r for r in summary["results"])
    conserved = all(r.get("conserved", True) for r in summary["results"])
    return 1 if failed or not conserved else 0


if __name__ == "__main__":
    sys.exit(main())
