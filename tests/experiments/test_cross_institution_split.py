"""The cross-institution split on cases made up by hand (no model, no table): every kept case
has a role, and a cohort with nothing to give stops the run naming cohort, ledger and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radonc_llm.data.cases import Case, read_cases
from radonc_llm.errors import RadoncInputError
from radonc_llm.experiments.cross_institution import CrossInstitutionConfig, split_cohorts


def _config(tmp: Path, **changes) -> CrossInstitutionConfig:
    raw = {
        "kind": "cross_institution",
        "name": "split",
        "runs_dir": str(tmp / "runs"),
        "cohorts": {"radcure": str(tmp / "radcure"), "hn1": str(tmp / "hn1")},
        "evaluation": {"test_sample": 3},
        **changes,
    }
    return CrossInstitutionConfig.model_validate(raw)


def _cases(prefix: str, n: int, split: str | None, **extra) -> list[Case]:
    return [
        Case(
            case_id=f"{prefix}{i}",
            patient_id=f"{prefix}{i}",
            diagnosis_text="Oropharynx primary, T2 N1 M0.",
            regimen="70 Gy in 35 fractions",
            modality="photon",  # one modality: the whole cohort is one stratum
            icd10="C10.9",
            site="oropharynx",
            split=split,
            **extra,
        )
        for i in range(n)
    ]


def _radcure() -> list[Case]:
    return [
        *_cases("t", 20, "train"),
        *_cases("h", 6, "test"),
        *_cases("u", 2, None, source_split="0"),
    ]


def test_every_kept_case_has_a_role(tmp_path):
    config = _config(tmp_path)
    cohorts = {"radcure": _radcure(), "hn1": _cases("m", 5, None)}
    out = tmp_path / "split"
    summary = split_cohorts(config, cohorts, out)
    # Training cohort: train + validation + internal test + not used = every kept case.
    own = sum(summary[part]["cases"] for part in ("train", "val", "unused"))
    assert own + summary["tests"]["radcure"]["cases"] == len(cohorts["radcure"])
    assert summary["unused"]["source_split"] == {"0": 2}
    assert summary["val"]["cases"] == 2  # 10% of 20, one stratum (all photon, one site)
    # External cohort: every kept case is a test case; a seeded 3 of them are evaluated.
    assert summary["tests"]["hn1"] == {"role": "external", "cases": 5, "patients": 5,
                                       "evaluated": 3}  # fmt: skip
    evaluated = {c.case_id for c in read_cases(out / "eval_hn1.jsonl")}
    assert evaluated <= {c.case_id for c in read_cases(out / "test_hn1.jsonl")}
    assert json.loads((out / "split.json").read_text()) == summary


def test_an_external_cohort_that_kept_no_case_stops_the_split_naming_its_ledger(tmp_path):
    config = _config(tmp_path)
    imports = {"hn1": {"input_rows": {"HN1_ClinicalData.csv": 8}, "reasons": {"bad_value": 8}}}
    (tmp_path / "split").mkdir()
    with pytest.raises(RadoncInputError) as error:
        split_cohorts(config, {"radcure": _radcure(), "hn1": []}, tmp_path / "split",
                      imports=imports)  # fmt: skip
    assert error.value.field == "cohorts.hn1"
    assert error.value.file == str(tmp_path / "hn1")
    reason = error.value.reason
    assert "hn1 kept no case" in reason and "all 8 row(s)" in reason
    assert "cohorts/hn1.excluded.jsonl (bad_value 8)" in reason
    assert "remove hn1 from cohorts" in reason
    assert not (tmp_path / "split" / "test_hn1.jsonl").exists()  # nothing half-written


def test_a_training_cohort_that_kept_no_case_is_not_called_unsplit(tmp_path):
    config = _config(tmp_path)
    imports = {"radcure": {"input_rows": {"RADCURE.csv": 0}, "reasons": {}}}
    with pytest.raises(RadoncInputError) as error:
        split_cohorts(config, {"radcure": [], "hn1": _cases("m", 5, None)}, tmp_path,
                      imports=imports)  # fmt: skip
    assert error.value.field == "cohorts.radcure"
    assert "radcure kept no case: its table(s) hold no data row" in error.value.reason


def test_a_training_cohort_without_test_patients_says_what_it_has(tmp_path):
    config = _config(tmp_path)
    cohorts = {"radcure": _cases("t", 4, "train"), "hn1": _cases("m", 5, None)}
    with pytest.raises(RadoncInputError) as error:
        split_cohorts(config, cohorts, tmp_path)
    assert error.value.field == "train_cohort"
    assert "4 kept case(s): 4 in its train split, 0 in its test split" in error.value.reason


def test_too_few_training_patients_for_a_validation_share_is_refused(tmp_path):
    config = _config(tmp_path)
    cohorts = {
        "radcure": [*_cases("t", 3, "train"), *_cases("h", 2, "test")],
        "hn1": _cases("m", 5, None),
    }
    with pytest.raises(RadoncInputError) as error:
        split_cohorts(config, cohorts, tmp_path)
    assert error.value.field == "validation_share"
    assert "validation_share 0.1 of radcure's 3 training patient(s)" in error.value.reason
