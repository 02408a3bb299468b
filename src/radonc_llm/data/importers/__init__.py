"""Importers of public head-and-neck cohorts: registry tables -> case JSONL + exclusion ledger.

`radonc-llm import {radcure,hnscc-mdacc,hn1} PATH --out cases.jsonl` reads the tables where the
user keeps them (their licences are non-commercial; the package holds none of their rows) and
writes one case per kept row. The note is rendered from the structured fields (note.py), the
regimen is the recorded course (prescription.py), the ICD-10-CM code is derived from site and
subsite (site_codes.py) and the modality is photon for every row; `label_source` says so on
each case. Every row is kept or in the ledger with a reason code (result.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from radonc_llm.data.importers.hn1 import import_hn1
from radonc_llm.data.importers.hnscc_mdacc import import_hnscc_mdacc
from radonc_llm.data.importers.radcure import import_radcure
from radonc_llm.data.importers.result import ImportResult
from radonc_llm.errors import RadoncInputError

IMPORTERS: dict[str, Callable[[str | Path], ImportResult]] = {
    "radcure": import_radcure,
    "hnscc-mdacc": import_hnscc_mdacc,
    "hn1": import_hn1,
}
SPLITS = ("train", "val", "test")


def import_cohort(cohort: str, path: str | Path, *, split: str | None = None) -> ImportResult:
    """Import one cohort; `split` puts every kept case in that split (e.g. "test" for an
    external cohort), else a case keeps the split its source defines, if any."""
    if cohort not in IMPORTERS:
        raise RadoncInputError(
            f"unknown cohort '{cohort}' (known: {', '.join(IMPORTERS)})", field="cohort"
        )
    if split is not None and split not in SPLITS:
        raise RadoncInputError(f"split must be one of {', '.join(SPLITS)}", field="split")
    result = IMPORTERS[cohort](path)
    if split is not None:
        for case in result.cases:
            case.split = split  # type: ignore[assignment]
    return result
