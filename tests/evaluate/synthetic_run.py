"""A small, complete run directory written by hand, in the formats the stages write.

metrics.json and per_case.jsonl are written by the evaluation itself (`evaluate_predictions`),
so the fixture has exactly the evaluation's keys.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from radonc_llm.data.cases import read_cases
from radonc_llm.evaluate.run import evaluate_predictions
from radonc_llm.storage import write_json_atomic, write_jsonl_atomic

# (site, ICD-10-CM, modality, regimen, dose Gy, fractions, concurrent, note)
TEMPLATES = [
    (
        "breast",
        "C50.412",
        "photon",
        "40.05 Gy in 15 fractions",
        40.05,
        15,
        [],
        "62 y/o F, pT1cN0 IDC left breast s/p lumpectomy, ER+/PR+/HER2-.",
    ),
    (
        "prostate",
        "C61",
        "photon",
        "70 Gy in 28 fractions",
        70.0,
        28,
        [],
        "71M, cT2bN0M0 adenocarcinoma of the prostate, GS 3+4=7, PSA 8.1.",
    ),
    (
        "brain",
        "C71.1",
        "photon",
        "60 Gy in 30 fractions with concurrent temozolomide",
        60.0,
        30,
        ["temozolomide"],
        "58M, frontal glioblastoma, IDH-wt, MGMT methylated, s/p resection, KPS 90.",
    ),
    (
        "skin",
        "C44.320",
        "electron",
        "50 Gy in 20 fractions",
        50.0,
        20,
        [],
        "80 y/o M, SCC of the nose, 1.8 cm, not a surgical candidate.",
    ),
    (
        "cervix",
        "C53.9",
        "brachytherapy",
        "28 Gy in 4 fractions HDR",
        28.0,
        4,
        [],
        "45F, FIGO IIB squamous cell carcinoma of the cervix after EBRT with weekly cisplatin.",
    ),
    (
        "skull_base",
        "C41.0",
        "proton",
        "74 GyRBE in 37 fractions",
        74.0,
        37,
        [],
        "39M, clival chordoma s/p subtotal resection.",
    ),
    (
        "bone",
        "C79.51",
        "photon",
        "8 Gy in 1 fraction",
        8.0,
        1,
        [],
        "67F, painful L2 metastasis from breast cancer, ECOG 2.",
    ),
    (
        "rectum",
        "C20",
        "photon",
        "50.4 Gy in 28 fractions with concurrent capecitabine",
        50.4,
        28,
        ["capecitabine"],
        "55M, cT3N1 rectal adenocarcinoma, 6 cm from anal verge.",
    ),
    (
        "keloid",
        "L91.0",
        "electron",
        "15 Gy in 3 fractions",
        15.0,
        3,
        [],
        "29F, recurrent ear keloid, excised today.",
    ),
    (
        "trigeminal",
        "G50.0",
        "photon",
        "85 Gy in 1 fraction SRS",
        85.0,
        1,
        [],
        "74F, medically refractory right trigeminal neuralgia.",
    ),
]
N_TEST = 48
HOSTILE = "<script>alert('x')</script>"


def _case(index: int, split: str, rng: random.Random) -> dict:
    site, code, modality, regimen, dose, fractions, drugs, note = TEMPLATES[
        rng.randrange(len(TEMPLATES))
    ]
    return {
        "case_id": f"{split}-{index:03d}",
        "patient_id": f"P{split}{index:03d}",
        "diagnosis_text": note,
        "regimen": regimen,
        "modality": modality,
        "icd10": code,
        "regimen_structured": {
            "dose_gy": dose,
            "fractions": fractions,
            "dose_unit": "Gy",
            "concurrent": drugs,
        },
        "site": site,
        "split": split,
    }


def _answers(
    system: str, case: dict, rng: random.Random, train: list[dict]
) -> dict[str, str | None]:
    """(task -> raw answer text) of one system for one case."""
    if system == "finetuned":
        good = rng.random() < 0.8
        other = TEMPLATES[rng.randrange(len(TEMPLATES))]
        regimen = case["regimen"] if good else other[3]
        if rng.random() < 0.15:
            regimen = regimen.replace(" in ", " in 2 ", 1)  # near miss: wrong fraction count
        return {
            "modality": case["modality"] if rng.random() < 0.85 else "photon",
            "icd10": case["icd10"] if good else other[1],
            "regimen": regimen,
        }
    if system == "base":
        return {
            "modality": rng.choice(["photon", "Neutronotherapy", "proton", "external beam X-rays"]),
            "icd10": rng.choice([case["icd10"][:3] + ".9", "C80.1", "unknown", case["icd10"]]),
            "regimen": rng.choice(
                ["Radiation therapy as tolerated.", f"{case['regimen'].split(' in ')[0]} total", ""]
            ),
        }
    if system == "majority":
        return {"modality": "photon", "icd10": "C50.412", "regimen": "70 Gy in 28 fractions"}
    if system == "tfidf-logreg":
        return {
            "modality": case["modality"] if rng.random() < 0.75 else "photon",
            "icd10": case["icd10"] if rng.random() < 0.6 else "C61",
        }
    if system == "nearest-regimen":
        return {"regimen": rng.choice(train)["regimen"]}
    raise ValueError(system)


def _extract(task: str, raw: str | None) -> str | None:
    from radonc_llm.infer.extract import extract_answer

    return extract_answer(task, raw or "").prediction


def write_synthetic_run(run_dir: Path, *, seed: int = 7) -> Path:
    rng = random.Random(seed)
    train = [_case(i, "train", rng) for i in range(80)]
    val = [_case(i, "val", rng) for i in range(10)]
    test = [_case(i, "test", rng) for i in range(N_TEST)]
    cases = train + val + test

    kept = len(cases)
    funnel = {
        "steps": [
            {"step": "patients_in_export", "patients": kept + 31, "excluded": 0},
            {"step": "complete_record", "patients": kept + 19, "excluded": 12},
            {"step": "single_diagnosis", "patients": kept + 12, "excluded": 7},
            {"step": "billable_icd10", "patients": kept + 9, "excluded": 3},
            {"step": "primary_plan", "patients": kept + 4, "excluded": 5},
            {"step": "mappable_modality", "patients": kept + 2, "excluded": 2},
            {"step": "plausible_prescription", "patients": kept, "excluded": 2},
        ],
        "kept": kept,
        "input_rows": 3 * kept + 70,
        "ledger_rows": 70,
        "ledger_reasons": {
            "missing_diagnosis": 30,
            "multiple_diagnoses": 21,
            "not_billable": 9,
            "unselected_course": 7,
            HOSTILE: 3,
        },
    }
    write_jsonl_atomic(run_dir / "curate/cases.jsonl", cases)
    write_jsonl_atomic(
        run_dir / "curate/excluded.jsonl", [{"reason": "missing_diagnosis", "row": 1}]
    )
    write_json_atomic(run_dir / "curate/funnel.json", funnel)

    from radonc_llm.data import icd10

    summary = {"seed": 0, "fractions": [0.8, 0.1, 0.1], "splits": {}}
    for name, rows in (("train", train), ("val", val), ("test", test)):
        write_jsonl_atomic(run_dir / f"split/{name}.jsonl", rows)
        summary["splits"][name] = {
            "cases": len(rows),
            "patients": len({r["patient_id"] for r in rows}),
            "modality": dict(Counter(r["modality"] for r in rows).most_common()),
            "site": dict(Counter(r["site"] for r in rows).most_common()),
            "icd10_chapter": dict(Counter(icd10.chapter(r["icd10"]) for r in rows).most_common()),
        }
    write_json_atomic(run_dir / "split/split.json", summary)

    # As train/loop.py logs: windowed train loss per logged step, validation loss per epoch
    # with per-task losses beside it.
    curve = []
    for step in range(1, 41):
        loss = 2.6 * 0.94**step + 0.3 + rng.random() * 0.05
        curve.append(
            {
                "step": step,
                "epoch": step / 20,
                "split": "train",
                "loss": loss,
                "lr": 1e-3,
                "tokens_per_s": 250.0,
            }
        )
        if step % 10 == 0:
            val = 2.4 * 0.95**step + 0.45
            curve.append(
                {
                    "step": step,
                    "epoch": step / 20,
                    "split": "val",
                    "loss": val,
                    "loss_regimen": val * 1.3,
                    "loss_modality": val * 0.4,
                }
            )
    write_jsonl_atomic(run_dir / "train/metrics.jsonl", curve)
    write_json_atomic(
        run_dir / "train/manifest.json",
        {
            "kind": "train",
            "model": "smollm2-135m",
            "config": {
                "model": "smollm2-135m",
                "lora_rank": 16,
                "learning_rate": 1e-3,
                "epochs": 2,
                "tasks": ["regimen", "modality", "icd10"],
            },
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "packages": {"torch": "2.13.0", "peft": "0.21.0"},
            "seeds": {"seed": 0},
            "precision": "bf16",
            "hardware": {"cpu_count": 2},
            "status": "done",
            "best_val_loss": 0.61,
        },
    )

    systems = ["base", "finetuned", "majority", "tfidf-logreg", "nearest-regimen"]
    for system in systems:
        rows = []
        for case in test:
            for task, raw in _answers(system, case, rng, train).items():
                prediction = _extract(task, raw)
                rows.append(
                    {
                        "case_id": case["case_id"],
                        "task": task,
                        "prediction": prediction,
                        "raw": raw,
                        "malformed": prediction is None,
                    }
                )
        write_jsonl_atomic(run_dir / f"predict/{system}.jsonl", rows)

    evaluate_predictions(
        read_cases(run_dir / "split/test.jsonl"),
        {system: run_dir / f"predict/{system}.jsonl" for system in systems},
        run_dir / "evaluate",
        n_resamples=200,
    )

    # As `radonc-llm review export` writes it, from made-up ratings of two reviewers.
    from radonc_llm.review.metrics import RatingRecord, review_metrics

    odds = {"finetuned": (0.5, 0.3), "base": (0.05, 0.15), "reference": (0.8, 0.15)}
    records = []
    for case in test[:16]:
        for source, (as_is, minor) in odds.items():
            for reviewer in ("dr_a", "dr_b"):
                draw = rng.random()
                rating = (
                    "acceptable"
                    if draw < as_is
                    else "minor_edits"
                    if draw < as_is + minor
                    else "unacceptable"
                )
                records.append(
                    RatingRecord(
                        f"{case['case_id']}:{source}", case["case_id"], source, reviewer, rating
                    )
                )
    write_json_atomic(
        run_dir / "review/review_metrics.json",
        {
            "study_id": "demo-review",
            "sources": list(odds),
            "progress": {
                "assigned": len(records),
                "rated": len(records),
                "per_reviewer": {"dr_a": {}, "dr_b": {}},
            },
            **review_metrics(records, treatment="finetuned", control="base", sources=list(odds)),
        },
    )
    write_json_atomic(
        run_dir / "manifest.json",
        {
            "name": run_dir.name,
            "config": {"export": {"synthetic": {"patients": 600, "seed": 7}, "path": None}},
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "versions": {"python": "3.11.2", "torch": "2.13.0", "transformers": "5.24.0"},
            "seeds": {"split": 0, "train": 0, "sample": 0},
            "data_hashes": {"export": "ab" * 32, "test.jsonl": "cd" * 32},
            "hardware": {"cpu": "2 cores", "gpu": None, "memory_gb": 24},
            "stages": {
                "synth": {"seconds": 12.4, "status": "done", "input_hash": "1" * 64},
                "curate": {"seconds": 48.0, "status": "done", "input_hash": "2" * 64},
                "train": {"seconds": 611.9, "status": "done", "input_hash": "3" * 64},
                "evaluate": {
                    "seconds": 9.3,
                    "status": "skipped (unchanged)",
                    "input_hash": "4" * 64,
                },
            },
        },
    )
    return run_dir


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
