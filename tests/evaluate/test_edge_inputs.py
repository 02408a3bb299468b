"""`evaluate` and `report` on the inputs a real study meets: degenerate comparisons, tiny test
sets, odd answer forms, broken prediction files, bad names and unwritable outputs.

Every case checks numbers or the exact complaint, not only that nothing crashed.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from radonc_llm import storage
from radonc_llm.cli import app
from radonc_llm.data.cases import TASKS
from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import run as run_module
from radonc_llm.evaluate.report import build_report, read_run_metrics, write_report
from radonc_llm.evaluate.report_document import render_markdown
from radonc_llm.evaluate.run import (
    evaluate_predictions,
    parse_compare_args,
    parse_prediction_args,
    read_prediction_file,
)
from radonc_llm.tasks.build import task_answer
from tests.infer.sample_cases import SAMPLE_CASES, sample_cases

CASES = sample_cases()
CASE_IDS = {case.case_id for case in CASES}
N = len(CASES)


def _row(case_id: str, task: str, prediction: str | None) -> dict:
    return {"case_id": case_id, "task": task, "prediction": prediction, "raw": prediction or ""}


def _lines(rows: list[dict | str], newline: str = "\n") -> str:
    return "".join(r if isinstance(r, str) else json.dumps(r) + newline for r in rows)


def _write(path: Path, rows: list[dict | str], newline: str = "\n") -> Path:
    path.write_bytes(_lines(rows, newline).encode("utf-8"))
    return path


def _perfect(cases=CASES) -> list[dict]:
    return [_row(c.case_id, t, task_answer(c, t)) for c in cases for t in TASKS]


def _malformed(cases=CASES) -> list[dict]:
    return [_row(c.case_id, t, None) for c in cases for t in TASKS]


def _evaluate(tmp_path, systems: dict[str, list[dict]], cases=CASES, **kwargs):
    paths = {name: _write(tmp_path / f"{name}.jsonl", rows) for name, rows in systems.items()}
    return evaluate_predictions(cases, paths, tmp_path / "eval", n_resamples=50, **kwargs)


# --- degenerate comparisons and tiny test sets -------------------------------------------


def test_identical_systems_give_p_one_zero_effect_and_a_note(tmp_path):
    result = _evaluate(tmp_path, {"base": _perfect(), "ft": _perfect()})
    comparisons = result.metrics["comparisons"]
    assert len(comparisons) == 5  # Wilcoxon x 3 tasks + McNemar x 2 classification tasks
    for row in comparisons:
        assert (row["p_value"], row["p_holm"], row["effect_size"]) == (1.0, 1.0, 0.0)
        assert row["n"] == N and row["n_nonzero"] == 0 and row["statistic"] == 0.0
    assert any("read byte-identical prediction files" in m for m in result.messages)


def test_systems_decoded_differently_are_told_not_to_compare_icd10_rouge(tmp_path):
    free = [{**row, "decoding": "free"} for row in _perfect()]
    constrained = [{**row, "decoding": "constrained"} for row in _perfect()]
    result = _evaluate(tmp_path, {"base": free, "ft": constrained})
    (said,) = [m for m in result.messages if "decoded differently" in m]
    assert said.startswith("ft vs base: decoded differently (ft constrained, base free)")
    assert "not their ICD-10 ROUGE-1" in said
    alike = _evaluate(tmp_path, {"base": constrained, "ft": constrained[::-1]})
    assert not [m for m in alike.messages if "decoded differently" in m]
    baseline = [{**row, "decoding": "none"} for row in _perfect()]  # what baselines record
    model_vs_baseline = _evaluate(tmp_path, {"base": constrained, "majority": baseline})
    assert not [m for m in model_vs_baseline.messages if "decoded differently" in m]


def test_all_malformed_system_scores_zero_and_loses_every_pair(tmp_path):
    result = _evaluate(tmp_path, {"base": _malformed(), "ft": _perfect()})
    for task, block in result.metrics["systems"]["base"].items():
        assert block["n"] == N and block["malformed_rate"] == 1.0, task
        assert block["accuracy"] == 0.0 and block["rouge1_f"] == 0.0
    assert result.metrics["systems"]["ft"]["modality"]["malformed_rate"] == 0.0
    inputs = result.metrics["inputs"]["base"]
    assert inputs["rows"] == inputs["scored"] == 3 * N
    for row in result.metrics["comparisons"]:
        # Every pair favours ft: exact one-sided p = 2^-8 for both tests, effect +1.
        assert row["p_value"] == pytest.approx(0.5**N)
        assert row["effect_size"] == 1.0 and row["n_nonzero"] == N


def test_one_case_has_no_intervals_and_says_why(tmp_path):
    one = CASES[:1]
    result = _evaluate(tmp_path, {"base": _malformed(one), "ft": _perfect(one)}, cases=one)
    block = result.metrics["systems"]["ft"]["modality"]
    assert block["n"] == 1 and block["accuracy"] == 1.0
    assert all(ci is None for ci in block["ci95"].values())
    assert "only 1 case: no bootstrap 95% CIs (they need at least 2 cases)" in result.messages
    wilcoxon = next(c for c in result.metrics["comparisons"] if c["test"] == "wilcoxon")
    assert wilcoxon["p_value"] == 0.5 and wilcoxon["method"].startswith("exact")


def test_two_cases_one_tie_is_exact_on_the_non_zero_difference(tmp_path):
    two = CASES[:2]
    base = _perfect(two)
    base[1]["prediction"] = base[1]["raw"] = "electron"  # c01 modality wrong; c02 right
    result = _evaluate(tmp_path, {"base": base, "ft": _perfect(two)}, cases=two)
    row = next(
        c
        for c in result.metrics["comparisons"]
        if c["task"] == "modality" and c["test"] == "wilcoxon"
    )
    # d = (1, 0): the zero is dropped; one positive difference -> p = 1/2.
    assert (row["n"], row["n_nonzero"], row["p_value"]) == (2, 1, 0.5)
    assert row["method"] == "exact (all 2^1 sign flips of the non-zero differences)"
    assert not any("only 1 case" in m for m in result.messages)


# --- odd answer forms ----------------------------------------------------------------------


def test_icd10_in_odd_case_and_dotless_forms_is_read_as_the_code(tmp_path):
    odd = {"c01": "c61", "c02": "c50412", "c03": " C71.1 ", "c04": "c44.311"}
    rows = [_row(cid, "icd10", code) for cid, code in odd.items()]
    result = _evaluate(tmp_path, {"x": rows})
    block = result.metrics["systems"]["x"]["icd10"]
    # Four of eight right, the other four missing and so malformed (never skipped).
    assert block["exact_accuracy"] == pytest.approx(4 / N)
    assert block["malformed_rate"] == pytest.approx(4 / N)


def test_regimen_empty_huge_and_non_ascii_answers(tmp_path):
    huge = "60 Gy in 30 fractions " * 230  # ~5,000 characters
    answers = ["", huge, "70 Gy in 28 Fraktionen, gleichzeitig Cisplatin — ±", "\u200b   "]
    rows = [_row(c.case_id, "regimen", a) for c, a in zip(CASES, answers, strict=False)]
    result = _evaluate(tmp_path, {"x": rows})
    block = result.metrics["systems"]["x"]["regimen"]
    per_case = {
        r["case_id"]: r
        for r in map(json.loads, (tmp_path / "eval/per_case.jsonl").read_text().splitlines())
    }
    assert per_case["c01"]["malformed"] and per_case["c04"]["malformed"]  # empty, blank
    assert not per_case["c02"]["malformed"] and not per_case["c03"]["malformed"]
    assert per_case["c03"]["prediction"].endswith("— ±")  # non-ASCII kept as written
    assert 0 < per_case["c02"]["rouge1_f"] < 1
    assert block["n"] == N and block["malformed_rate"] == pytest.approx(6 / N)


# --- prediction files ----------------------------------------------------------------------


def test_every_row_is_accounted_for(tmp_path):
    rows = _perfect() + [
        _row("c01", "modality", "photon"),  # identical duplicate
        _row("c02", "modality", "proton"),  # conflicts with the first answer
        _row("zz", "modality", "photon"),  # not in the case file
        "{not json\n",
    ]
    read = read_prediction_file("x", _write(tmp_path / "x.jsonl", rows), CASE_IDS)
    s = read.summary()
    assert s["rows"] == 3 * N + 4
    assert s["rows"] == s["scored"] + s["unreadable"] + s["duplicates"] + s["unknown_case"]
    assert (s["scored"], s["conflicting"]) == (3 * N, 1)


def test_bom_crlf_and_a_truncated_last_line(tmp_path):
    rows = _perfect()
    text = _lines(rows, "\r\n")
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8")[:-20])  # writer killed mid-row
    read = read_prediction_file("x", path, CASE_IDS)
    assert read.rows == 3 * N and len(read.unreadable) == 1
    assert read.unreadable[0][0] == 3 * N and "not valid JSON" in read.unreadable[0][1]
    last = rows[-1]
    assert read.missing == {"regimen": 0, "modality": 0, "icd10": 1}
    assert (last["case_id"], last["task"]) not in read.answers
    assert read.answers[("c01", "regimen")].prediction == task_answer(CASES[0], "regimen")


def test_a_misspelt_task_is_named_with_the_likely_intent(tmp_path):
    rows = [{**_row("c01", "modality", "photon"), "task": "Modality"}]
    rows += [{**_row("c01", "icd10", "C61"), "task": "ICD-10"}, _row("c01", "staging", "T2")]
    read = read_prediction_file("x", _write(tmp_path / "x.jsonl", rows), CASE_IDS)
    reasons = [why for _, why in read.unreadable]
    assert reasons[0].endswith("did you mean 'modality'?")
    assert reasons[1].endswith("did you mean 'icd10'?")
    assert reasons[2] == "unknown task 'staging' (tasks: regimen, modality, icd10)"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "holds no prediction rows (empty file)"),
        (b"\n  \n", "holds no prediction rows (empty file)"),
        (
            _lines([_row("C01", "modality", "photon"), _row("C01", "icd10", "C61")]).encode(),
            "none of its 2 row(s) can be scored: 2 for case ids not in the case file "
            "(e.g. 'C01'); is --cases the file",
        ),
        (b"{oops\n", "none of its 1 row(s) can be scored: 1 unreadable (first: line 1: not valid"),
        (
            _lines(_perfect()).encode("utf-16"),
            "is UTF-16 encoded (as some Windows tools save text); save it as UTF-8",
        ),
    ],
)
def test_a_file_with_nothing_to_score_is_an_error(tmp_path, content, words):
    (tmp_path / "e.jsonl").write_bytes(content)
    base = _write(tmp_path / "base.jsonl", _perfect())
    with pytest.raises(RadoncInputError, match="field 'e'") as caught:
        evaluate_predictions(
            CASES, {"base": base, "e": tmp_path / "e.jsonl"}, tmp_path / "out", n_resamples=5
        )
    assert words in caught.value.reason
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            json.dumps(_perfect()).encode(),
            "this looks like a JSON array; a prediction file is JSON",
        ),
        (
            json.dumps(_perfect(), indent=2).encode(),
            "this looks like a JSON array; a prediction file is JSON Lines",
        ),
        (
            "\n".join(json.dumps(r, indent=1) for r in _perfect()).encode(),
            "this looks like indented JSON, one object over several lines",
        ),
        (
            b"case_id,task,prediction,raw\nc01,modality,photon,photon\n",
            "this looks like a CSV or TSV table with a header row",
        ),
    ],
)
def test_a_file_in_another_format_is_named(tmp_path, content, words):
    (tmp_path / "e.json").write_bytes(content)
    with pytest.raises(RadoncInputError, match="none of its") as caught:
        evaluate_predictions(CASES, {"e": tmp_path / "e.json"}, tmp_path / "out", n_resamples=5)
    assert words in caught.value.reason


def test_a_readable_file_gets_no_format_guess(tmp_path):
    # One good row makes the file JSON Lines: a broken row is counted, not diagnosed.
    rows = [_row("c01", "modality", "photon"), "case_id,task\n"]
    result = _evaluate(tmp_path, {"x": rows})
    assert not any("looks like" in m for m in result.messages)
    assert result.metrics["inputs"]["x"]["unreadable"] == 1


def test_compare_errors_name_what_is_wrong():
    systems = ["base", "ft"]
    assert parse_compare_args([" ft : base "], systems) == [("ft", "base")]
    for value, words in [
        ("ft:nope", "'nope' is not a system given with --predictions, got 'ft:nope'; "),
        ("ft", "no ':' in it, got 'ft'; "),
        ("ft:", "a name is missing on one side of ':', got 'ft:'; "),
        ("ft:ft", "a system cannot be compared with itself, got 'ft:ft'; "),
    ]:
        with pytest.raises(RadoncInputError, match="field 'compare'") as caught:
            parse_compare_args([value], systems)
        assert caught.value.reason.startswith(words)
        assert caught.value.reason.endswith(
            "expected SYSTEM:BASELINE, two different names from: base, ft (e.g. ft:base)"
        )


def test_a_negative_seed_is_refused_before_scoring(tmp_path):
    base = _write(tmp_path / "base.jsonl", _perfect())
    with pytest.raises(RadoncInputError, match="field 'seed'.*must be 0 or more"):
        evaluate_predictions(CASES, {"base": base}, tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


def test_equal_rouge_through_different_float_paths_is_a_tie(tmp_path):
    # Reference "70 Gy in 28 fractions IMRT" (6 words). "70 Gy in" (P = 1, R = 1/2) and
    # "70 Gy in 28 fractions to prostate and bed" (9 words, 5 right: P = 5/9, R = 5/6) both
    # score ROUGE-1 F = 2/3, as floats one bit apart; every other case is the same answer.
    base = _perfect()
    system = _perfect()
    for rows, text in ((base, "70 Gy in"), (system, "70 Gy in 28 fractions to prostate and bed")):
        rows[0] = _row("c01", "regimen", text)
    result = _evaluate(tmp_path, {"base": base, "ft": system})
    per_case = [json.loads(line) for line in (tmp_path / "eval/per_case.jsonl").open()]
    scores = {
        r["system"]: r["rouge1_f"]
        for r in per_case
        if (r["case_id"], r["task"]) == ("c01", "regimen")
    }
    assert scores["base"] == pytest.approx(2 / 3) and scores["ft"] == pytest.approx(2 / 3)
    assert scores["base"] != scores["ft"]  # the float noise this test is about
    row = next(c for c in result.metrics["comparisons"] if c["task"] == "regimen")
    assert (row["n_nonzero"], row["p_value"], row["effect_size"]) == (0, 1.0, 0.0)


def test_a_folder_or_an_unreadable_file_as_predictions(tmp_path, monkeypatch):
    with pytest.raises(RadoncInputError, match="is a folder, not a prediction file"):
        read_prediction_file("x", tmp_path, CASE_IDS)
    path = _write(tmp_path / "x.jsonl", _perfect())

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(RadoncInputError, match=r"cannot read the prediction file \(Permission"):
        read_prediction_file("x", path, CASE_IDS)


def test_system_names_cannot_hold_the_compare_separator():
    assert parse_prediction_args(["my model=a.jsonl", "a/b=b.jsonl"]) == {
        "my model": Path("a.jsonl"),
        "a/b": Path("b.jsonl"),
    }
    assert parse_prediction_args(["x=runs/lr=1e-3/p.jsonl"]) == {"x": Path("runs/lr=1e-3/p.jsonl")}
    with pytest.raises(RadoncInputError, match="may not hold ':'"):
        parse_prediction_args(["ft:v2=a.jsonl"])
    with pytest.raises(RadoncInputError, match="control characters"):
        parse_prediction_args(["ft\tv2=a.jsonl"])


# --- --out ---------------------------------------------------------------------------------


def test_out_under_a_file_fails_before_scoring(tmp_path):
    base = _write(tmp_path / "base.jsonl", _perfect())
    (tmp_path / "taken").write_text("")
    with pytest.raises(RadoncInputError, match="taken: is a file, not a folder"):
        evaluate_predictions(CASES, {"base": base}, tmp_path / "taken" / "eval")
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--cases",
            str(_write(tmp_path / "cases.jsonl", SAMPLE_CASES)),
            "--predictions",
            f"base={base}",
            "--out",
            str(tmp_path / "taken" / "eval"),
        ],
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is a file" in result.output


def test_an_unwritable_out_folder_is_a_clear_error(tmp_path, monkeypatch):
    # chmod cannot stop root, so the refusal is simulated where the code asks for it.
    base = _write(tmp_path / "base.jsonl", _perfect())
    monkeypatch.setattr(storage.os, "access", lambda path, mode: False)
    with pytest.raises(RadoncInputError, match="not writable by you"):
        evaluate_predictions(CASES, {"base": base}, tmp_path / "eval")
    monkeypatch.undo()

    def disk_full(path, rows):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(run_module, "write_jsonl_atomic", disk_full)
    with pytest.raises(RadoncInputError, match=r"cannot write the results \(No space left"):
        evaluate_predictions(CASES, {"base": base}, tmp_path / "eval", n_resamples=5)


def test_rerunning_into_the_same_out_folder_replaces_the_results(tmp_path):
    first = _evaluate(tmp_path, {"base": _malformed()})
    assert first.metrics["systems"]["base"]["modality"]["accuracy"] == 0.0
    second = _evaluate(tmp_path, {"base": _perfect()})
    on_disk = json.loads((second.out / "metrics.json").read_text())
    assert on_disk["systems"]["base"]["modality"]["accuracy"] == 1.0
    assert len((second.out / "per_case.jsonl").read_text().splitlines()) == 3 * N


# --- report ------------------------------------------------------------------------------


def _run_with_metrics(tmp_path: Path, metrics) -> Path:
    run = tmp_path / "run"
    (run / "evaluate").mkdir(parents=True)
    (run / "evaluate" / "metrics.json").write_text(json.dumps(metrics))
    return run


def _markdown(run: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a section that fails with a traceback-worthy error
        return render_markdown(build_report(run))


@pytest.mark.parametrize(
    ("metrics", "words"),
    [
        ([], "expected a JSON object, found a JSON list"),
        ({"systems": {"base": None}}, "field 'systems.base': expected an object"),
        ({"systems": {"base": {"modality": 3}}}, "field 'systems.base.modality'"),
        ({"systems": {}, "comparisons": {"a": 1}}, "field 'comparisons'"),
    ],
)
def test_report_names_a_misshapen_metrics_file(tmp_path, metrics, words):
    run = _run_with_metrics(tmp_path, metrics)
    with pytest.raises(RadoncInputError) as caught:
        read_run_metrics(run)
    assert words in caught.value.message
    markdown = _markdown(run)
    assert f"Could not read this section's input: {run}/evaluate/metrics.json" in markdown
    assert words in markdown


def test_report_without_the_finetuned_base_pair_says_so(tmp_path):
    evaluation = _evaluate(tmp_path, {"ft": _perfect(), "x": _malformed()})
    markdown = _markdown(_run_with_metrics(tmp_path, evaluation.metrics))
    assert "no task that both the fine-tuned model ('finetuned') and the original model" in markdown
    assert "(systems evaluated: ft, x)" in markdown
    assert "Nothing to summarise yet" not in markdown


def test_report_of_a_single_system_with_nan_intervals(tmp_path):
    evaluation = _evaluate(tmp_path, {"finetuned": _perfect()})
    metrics = evaluation.metrics
    for block in metrics["systems"]["finetuned"].values():
        block["ci95"] = {name: [math.nan, math.nan] for name in block["ci95"]}
    markdown = _markdown(_run_with_metrics(tmp_path, metrics))
    assert re.search(r"\bnan\b", markdown, flags=re.IGNORECASE) is None
    assert "100.0%" in markdown  # the values themselves are still shown


def test_report_out_that_is_a_file_is_an_error(tmp_path):
    run = _run_with_metrics(tmp_path, {"systems": {}})
    (tmp_path / "taken").write_text("")
    with pytest.raises(RadoncInputError, match="is a file; the report's --out names a folder"):
        write_report(run, tmp_path / "taken")
    with pytest.raises(RadoncInputError, match=r"cannot write the report \(Not a directory"):
        write_report(run, tmp_path / "taken" / "report")
    result = CliRunner().invoke(
        app, ["report", "--run", str(run), "--out", str(tmp_path / "taken")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
