"""Airlock end to end, two or more variants interleaved on one Prefect server and one dataset.

    .venv/bin/python bench/compare.py --records 100000 --rounds 4 \\
        --variant before=/tmp/checkout-before --variant after=. \\
        --variant after-8-threads=.:AIRLOCK_TASK_WORKERS=8

A variant is ``NAME=DIR`` (a checkout to measure) with optional ``:VAR=VALUE[,VAR=VALUE]`` environment
settings for its runs. Each round runs every variant once, in turn, each in a fresh Airlock home; the
order rotates from round to round so that no variant always runs first. On a machine whose speed drifts
within the hour, single runs of two versions say little: interleaved rounds, compared round by round,
say more. Prints each run (records/s, wall seconds, peak tree MiB, CPU of the run's process and of its
children) and, per variant, the mean and median records/s and the mean ratio to the first variant.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import Bench


@dataclass(frozen=True)
class Variant:
    name: str
    project_dir: Path
    env: dict[str, str] = field(default_factory=dict)


def parse_variant(text: str) -> Variant:
    """``NAME=DIR[:VAR=VALUE,VAR=VALUE]``."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected NAME=DIR[:VAR=VALUE,...]")
    directory, _, settings = rest.partition(":")
    env: dict[str, str] = {}
    for item in filter(None, settings.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"variant {name}: {item!r} is not VAR=VALUE")
        env[key] = value
    path = Path(directory).resolve()
    if not (path / "flows" / "run_request.py").is_file():
        raise argparse.ArgumentTypeError(f"variant {name}: {path} is not an Airlock checkout")
    return Variant(name, path, env)


class CompareBench(Bench):
    """The throughput benchmark's Airlock mode, run once per variant per round: a fresh home and
    work folder each time, the variant's checkout and environment."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.run_no = 0

    def child_env(self, mode: str, records: int) -> dict[str, str]:
        env = super().child_env(mode, records)
        if mode == "airlock":
            env["AIRLOCK_HOME"] = str(self.root / f"airlock-{records}-run{self.run_no}")
        return env

    def run_variant(self, variant: Variant, csv: Path) -> dict[str, Any]:
        self.run_no += 1
        self.project_dir = variant.project_dir
        saved = {key: os.environ.get(key) for key in variant.env}
        os.environ.update(variant.env)
        try:
            result = self.run_mode("airlock", self.args.records, csv)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return result


def summarize(variants: Sequence[Variant], runs: Sequence[tuple[int, str, dict[str, Any]]]) -> str:
    """A line per run, then per variant: mean and median records/s, and the mean of its per-round
    ratios to the first variant (rounds where either failed are left out)."""
    lines = [f"{'round':>5}  {'variant':<24} {'records/s':>9} {'wall s':>7} {'tree MiB':>8} "
             f"{'run CPU s':>9} {'children CPU s':>14}  conserved"]
    rate: dict[tuple[int, str], float] = {}
    for round_no, name, result in runs:
        if "error" in result:
            lines.append(f"{round_no:>5}  {name:<24} FAILED: {result['error'][:200]}")
            continue
        rate[(round_no, name)] = result["records_per_second"]
        cpu = result.get("timed_cpu_seconds", {})
        lines.append(f"{round_no:>5}  {name:<24} {result['records_per_second']:>9,.0f} {result['wall_seconds']:>7.2f} "
                     f"{result['memory']['tree_mib']:>8,.0f} {cpu.get('run_process', 0):>9.1f} "
                     f"{cpu.get('children', 0):>14.1f}  {result.get('conserved')}")
    lines.append("")
    first = variants[0].name
    rounds = sorted({r for r, _ in rate})
    for variant in variants:
        rates = [rate[(r, variant.name)] for r in rounds if (r, variant.name) in rate]
        if not rates:
            lines.append(f"{variant.name:<24} no run finished")
            continue
        ratios = [rate[(r, variant.name)] / rate[(r, first)] for r in rounds
                  if (r, variant.name) in rate and (r, first) in rate]
        against = (f", {statistics.mean(ratios):.3f} x {first} round by round"
                   if ratios and variant.name != first else "")
        lines.append(f"{variant.name:<24} mean {statistics.mean(rates):,.0f}, median {statistics.median(rates):,.0f} "
                     f"records/s over {len(rates)} run(s){against}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", type=parse_variant, action="append", required=True,
                        help="NAME=DIR[:VAR=VALUE,...]; give two or more")
    parser.add_argument("--companies", choices=["scaled", "sample"], default="scaled")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores, CSVs)")
    args = parser.parse_args(argv)
    if len({v.name for v in args.variant}) != len(args.variant):
        parser.error("variant names must differ")
    if args.rounds < 1 or args.records < 1:
        parser.error("--rounds and --records must be at least 1")
    # What Bench reads of its arguments; the rest of throughput.py's options do not apply here.
    args.chunk_size, args.sample_interval, args.py_spy, args.profile_modes = None, 0.1, None, []
    args.project_dir, args.modes = args.variant[0].project_dir, ["airlock"]
    bench = CompareBench(args)
    runs: list[tuple[int, str, dict[str, Any]]] = []
    try:
        bench.sampler.start()
        csv = bench.generate(args.records)
        bench.start_server()
        variants = list(args.variant)
        for round_no in range(1, args.rounds + 1):
            shift = (round_no - 1) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                runs.append((round_no, variant.name, bench.run_variant(variant, csv)))
    finally:
        bench.close()
    print(summarize(args.variant, runs))
    return 0 if runs and all("error" not in r and r.get("conserved") for _, _, r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
