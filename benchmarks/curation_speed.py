"""synth + curate + split + tasks: wall time and peak memory at 15,724 and 157,240 patients.

Targets (issue "Foundation"): under 30 s and 1 GB at 15,724 patients on 2 cores, and linear:
157,240 patients in under 10x the 15,724 time. Each size runs in a fresh process so that its
peak RSS is its own. The last line is one JSON object with the figures.

    python benchmarks/curation_speed.py [--sizes 15724,157240]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

STAGES = """
import json, resource, sys, time
from pathlib import Path
from radonc_llm.data.synth import SynthConfig, write_synthetic_export
from radonc_llm.data.cohort import curate_export, write_curation
from radonc_llm.data.split import write_splits
from radonc_llm.data.cases import read_cases
from radonc_llm.tasks.build import write_task_datasets

n, out = int(sys.argv[1]), Path(sys.argv[2])
times = {}
start = time.perf_counter()
write_synthetic_export(SynthConfig(patients=n, seed=0), out / "raw")
times["synth"] = time.perf_counter() - start
t = time.perf_counter()
result = curate_export(out / "raw")
write_curation(result, out / "cur")
times["curate"] = time.perf_counter() - t
t = time.perf_counter()
write_splits(read_cases(out / "cur" / "cases.jsonl"), out / "split", seed=0)
times["split"] = time.perf_counter() - t
t = time.perf_counter()
for name in ("train", "val", "test"):
    write_task_datasets(read_cases(out / "split" / f"{name}.jsonl"), out / "tasks" / name)
times["tasks"] = time.perf_counter() - t
times["total"] = time.perf_counter() - start
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
print(json.dumps({"patients": n, "kept": len(result.cases), "seconds": times, "peak_rss_gb": peak_gb}))
"""


def run_size(patients: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", STAGES, str(patients), tmp],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="15724,157240")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    console = Console()
    results = []
    for size in sizes:
        with console.status(f"{size:,} patients"):
            started = time.perf_counter()
            results.append(run_size(size))
        console.print(f"{size:,} patients done in {time.perf_counter() - started:.1f} s")
    table = Table(title="Curation pipeline: synth + curate + split + tasks (one process per size)")
    for column in (
        "patients",
        "kept",
        "synth s",
        "curate s",
        "split s",
        "tasks s",
        "total s",
        "peak RSS GB",
    ):
        table.add_column(column, justify="right")
    for r in results:
        s = r["seconds"]
        table.add_row(
            f"{r['patients']:,}", f"{r['kept']:,} ({100 * r['kept'] / r['patients']:.1f}%)",
            *(f"{s[k]:.1f}" for k in ("synth", "curate", "split", "tasks", "total")),
            f"{r['peak_rss_gb']:.2f}",
        )  # fmt: skip
    console.print(table)
    summary = {"runs": results, "cores": len(os.sched_getaffinity(0))}
    if len(results) >= 2:
        summary["scaling_ratio"] = results[-1]["seconds"]["total"] / results[0]["seconds"]["total"]
        summary["size_ratio"] = results[-1]["patients"] / results[0]["patients"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
