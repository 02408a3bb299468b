"""The study report: every section, table and figure from a complete run; one line per
absent artefact from a partial one; escaped data; and the page as a browser shows it."""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from radonc_llm.cli import app
from radonc_llm.evaluate import figures
from radonc_llm.evaluate.report import SECTIONS, headline_table, write_report
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.evaluate.synthetic_run import HOSTILE, write_synthetic_run

TABLES = [
    "funnel",
    "ledger",
    "split-makeup",
    "split-chapters",
    "split-sites",
    "training-loss",
    "training-setup",
    "headline",
    "comparisons",
    "modality-per-class",
    "icd10-levels",
    "regimen-agreement",
    "examples",
    "review-acceptability",
    "review-comparison",
    "review-agreement",
    "stages",
    "manifest",
]
FIGURES = [
    "funnel-flow",
    "training-curves",
    "modality-confusion",
    "icd10-levels",
    "rouge1-distribution",
    "dose-agreement",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("runs") / "demo")


@pytest.fixture(scope="module")
def rendered(run_dir) -> dict:
    html_path, md_path = write_report(run_dir)
    return {
        "html_path": html_path,
        "md_path": md_path,
        "html": html_path.read_text(encoding="utf-8"),
        "md": md_path.read_text(encoding="utf-8"),
    }


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("report"))
    return copy


def _table(html: str, key: str) -> str:
    match = re.search(rf'<table id="table-{key}".*?</table>', html, flags=re.S)
    assert match, f"table {key} not in the report"
    return match.group(0)


def _row(table_html: str, first_cell: str) -> str:
    rows = re.findall(r"<tr>(.*?)</tr>", table_html, flags=re.S)
    matching = [row for row in rows if re.search(rf"<td[^>]*>{re.escape(first_cell)}</td>", row)]
    assert matching, f"no row starting with {first_cell!r}"
    return matching[0]


def _group(table_html: str, name: str) -> str:
    """The rows under one group heading of a table (up to the next heading)."""
    after = table_html.split(f'scope="rowgroup">{name}</th>', 1)[1]
    return after.split('scope="rowgroup"', 1)[0]


def _missing_lines(html: str) -> list[str]:
    return re.findall(r'<p class="missing">(.*?)</p>', html, flags=re.S)


def test_complete_run_gives_every_section_table_and_figure_numbered_in_order(rendered):
    html = rendered["html"]
    for key, _, _ in SECTIONS:
        assert f'id="sec-{key}"' in html
    for key in TABLES:
        assert f'id="table-{key}"' in html, key
    for key in FIGURES:
        assert f'data-key="{key}"' in html, key
    tables = [int(n) for n in re.findall(r'<span class="label">Table (\d+)\.</span>', html)]
    figures = [int(n) for n in re.findall(r'<span class="label">Figure (\d+)\.</span>', html)]
    assert tables == list(range(1, len(tables) + 1)) and len(tables) >= len(TABLES)
    assert figures == list(range(1, len(FIGURES) + 1))
    assert _missing_lines(html) == []


def test_html_is_self_contained(rendered):
    html = rendered["html"]
    sources = re.findall(r'\bsrc="([^"]*)"', html)
    assert len(sources) == len(FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in sources)
    assert not re.search(r'(href|src)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_headline_table_holds_the_evaluations_numbers(run_dir, rendered):
    metrics = json.loads((run_dir / "evaluate/metrics.json").read_text())
    headline = _table(rendered["html"], "headline")

    tuned = metrics["systems"]["finetuned"]["modality"]
    low, high = tuned["ci95"]["accuracy"]
    expected = f"{100 * tuned['accuracy']:.1f}% ({100 * low:.1f}–{100 * high:.1f})"
    assert expected in _row(_group(headline, "Modality"), "Fine-tuned model")

    # The ICD-10 row of the majority baseline: its Wilcoxon and Holm p-values against base.
    wilcoxon = next(
        c
        for c in metrics["comparisons"]
        if (c["task"], c["system"], c["test"]) == ("icd10", "majority", "wilcoxon")
    )
    icd10_part = _group(headline, "ICD-10-CM code")
    row = _row(icd10_part, "Majority class")
    assert f">{wilcoxon['p_value']:.3f}<" in row and f">{wilcoxon['p_holm']:.3f}<" in row
    assert f"{wilcoxon['effect_size']:+.2f}" in row
    # The original model is the reference of every test; regimen has no macro-F1.
    assert ">reference<" in _row(icd10_part, "Original model")
    regimen = metrics["systems"]["finetuned"]["regimen"]
    regimen_row = _row(_group(headline, "Regimen"), "Fine-tuned model")
    assert f"{regimen['rouge1_f']:.3f} (" in regimen_row


def test_text_from_the_data_is_escaped(rendered):
    assert HOSTILE not in rendered["html"]
    assert "&lt;script&gt;alert(" in rendered["html"]
    assert "<script>" not in rendered["md"] and "&lt;script>" in rendered["md"]


def test_markdown_carries_the_same_tables_and_its_figure_files(rendered):
    md, html = rendered["md"], rendered["html"]
    assert len(re.findall(r"^\*\*Table \d+\.\*\*", md, flags=re.M)) == html.count("<table")
    links = re.findall(r"!\[Figure \d+\]\((figures/[^)]+\.png)\)", md)
    assert len(links) == len(FIGURES)
    for link in links:
        data = (rendered["md_path"].parent / link).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000
    assert "| Fine-tuned model |" in md


def test_an_empty_run_gives_one_line_per_section(tmp_path):
    run = tmp_path / "runs" / "empty"
    run.mkdir(parents=True)
    html_path, md_path = write_report(run)
    html = html_path.read_text()
    missing = _missing_lines(html)
    assert len(missing) == len(SECTIONS)
    assert "<table" not in html and "<figure" not in html
    assert any("curate/funnel.json is absent" in line for line in missing)
    assert any("No clinical review yet" in line for line in missing)
    assert md_path.read_text().count("\n> ") == len(SECTIONS)


def test_a_partial_run_says_what_is_missing_and_keeps_the_rest(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "train/metrics.jsonl").unlink()
    shutil.rmtree(run / "review")
    (run / "evaluate/per_case.jsonl").unlink()
    html = write_report(run)[0].read_text()
    missing = _missing_lines(html)
    assert len(missing) == 2
    assert "No training curves" in missing[0] and "No clinical review yet" in missing[1]
    assert 'id="table-headline"' in html and 'id="table-training-setup"' in html
    # Without the per-case file, the regimen figures come from the prediction files.
    assert 'data-key="rouge1-distribution"' in html and 'id="table-examples"' in html

    shutil.rmtree(run / "predict")
    html = write_report(run)[0].read_text()
    missing = _missing_lines(html)
    assert any(
        "No ROUGE-1 distributions" in line and "predict/base.jsonl" in line for line in missing
    )
    assert any(line.startswith("No examples") for line in missing)


def test_split_caveats_are_said_under_the_split_tables(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    path = run / "split/split.json"
    summary = json.loads(path.read_text())
    summary["merged_patient_ids"] = [["P1", "p1 "]]
    summary["empty_splits"] = []
    for block in summary["splits"].values():
        block["absent"] = {"modality": [], "site": []}
    summary["splits"]["test"]["absent"] = {
        "modality": ["brachytherapy"],
        "site": ["uveal_melanoma"],
    }
    path.write_text(json.dumps(summary))
    html = write_report(run)[0].read_text()
    assert "1 patient(s) had ids written more than one way (P1 = p1 )" in html
    assert "The test split holds no case of modality brachytherapy; site uveal melanoma" in html
    assert "The train split holds no case" not in html


def test_an_unreadable_artefact_is_named_in_its_section(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "evaluate/metrics.json").write_text("{not json")
    html = write_report(run)[0].read_text()
    missing = _missing_lines(html)
    assert missing and all("metrics.json" in line for line in missing)
    assert any("not valid JSON" in line for line in missing)
    assert 'id="table-funnel"' in html and 'data-key="training-curves"' in html


def test_training_curves_from_flat_per_epoch_keys(tmp_path):
    run = tmp_path / "flat"
    rows = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e} for e in (1, 2, 3)]
    (run / "train").mkdir(parents=True)
    (run / "train/metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    html = write_report(run)[0].read_text()
    assert 'data-key="training-curves"' in html
    table = _table(html, "training-loss")
    assert "Validation loss" in table and "0.733 at epoch 3" in table


def test_headline_table_for_the_console(run_dir):
    metrics = json.loads((run_dir / "evaluate/metrics.json").read_text())
    console = Console(record=True, width=240)
    console.print(headline_table(metrics))
    text = console.export_text()
    assert "Fine-tuned model" in text and "Nearest training regimen" in text
    assert f"{100 * metrics['systems']['finetuned']['icd10']['exact_accuracy']:.1f}%" in text
    assert headline_table({"systems": {}}).row_count == 0


def test_report_command(run_dir, tmp_path):
    out = tmp_path / "elsewhere"
    result = CliRunner().invoke(app, ["report", "--run", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file() and (out / "figures").is_dir()
    assert "Main results on the test cases" in result.output
    assert str(out / "report.html") in result.output.replace("\n", "")

    result = CliRunner().invoke(app, ["report", "--run", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "run directory not found" in result.output
    assert "holds none of a run's files" not in CliRunner().invoke(
        app, ["report", "--run", str(run_dir), "--out", str(out)]
    ).output.replace("\n", " ")


def test_a_folder_that_is_no_run_is_reported_with_a_warning(tmp_path):
    (tmp_path / "eval").mkdir()
    result = CliRunner().invoke(app, ["report", "--run", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert "holds none of a run's files" in result.output.replace("\n", " ")


@pytest.mark.browser
def test_report_in_headless_chromium(rendered, tmp_path):
    from playwright.sync_api import sync_playwright

    # Fails rather than skips: a machine without the browser cannot vouch for the page.
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium"
    screenshot = tmp_path / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(rendered["html_path"].as_uri())
            page.screenshot(path=str(screenshot), full_page=True)

            headline = page.locator("#table-headline")
            assert headline.is_visible()
            box = headline.bounding_box()
            assert box and box["width"] > 400 and box["height"] > 200
            assert page.locator("#table-headline tbody tr").count() >= 12
            images = page.evaluate(
                """() => Array.from(document.querySelectorAll('figure img')).map(img => {
                    const r = img.getBoundingClientRect();
                    return {key: img.closest('figure').dataset.key, complete: img.complete,
                            natural: img.naturalWidth, width: r.width, height: r.height};
                })"""
            )
            assert [image["key"] for image in images] == FIGURES
            for image in images:
                assert image["complete"] and image["natural"] > 0, image
                assert image["width"] > 100 and image["height"] > 100, image
                assert page.locator(f'figure[data-key="{image["key"]}"] img').is_visible()
            external = [url for url in requests if not url.startswith(("file:", "data:"))]
            assert external == []
        finally:
            browser.close()
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert int.from_bytes(data[20:24], "big") > 4000  # the full page, not one viewport


def test_a_regimen_error_says_over_how_many_cases_it_was_averaged(run_dir, tmp_path):
    # An original model whose answer parses once has an EQD2 error over n = 1, not over n.
    run = _copy(run_dir, tmp_path)
    path = run / "evaluate/metrics.json"
    metrics = json.loads(path.read_text())
    block = metrics["systems"]["base"]["regimen"]
    block.update(eqd2_abs_error=28.19, eqd2_n=1, dose_per_fraction_abs_error=0.13)
    block.update(dose_per_fraction_n=1)
    block["ci95"].update(eqd2_abs_error=None, dose_per_fraction_abs_error=None)
    path.write_text(json.dumps(metrics))
    table = _table(write_report(run)[0].read_text(), "regimen-agreement")
    row = _row(table, "Original model")
    assert '28.19<span class="sub">n = 1</span>' in row
    assert "Dose/fraction |error| (Gy)" in table


def test_the_evaluated_cases_are_counted_and_named_a_sample(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    path = run / "evaluate/metrics.json"
    metrics = json.loads(path.read_text())
    split = json.loads((run / "split/split.json").read_text())
    n = metrics.get("n_cases") or metrics["systems"]["base"]["modality"]["n"]
    split["splits"]["test"]["cases"] = n + 100
    (run / "split/split.json").write_text(json.dumps(split))
    html = write_report(run)[0].read_text()
    assert f"a random sample of the {n + 100:,} cases of the test split" in html
    # An older metrics.json without n: no "0 test cases".
    metrics.pop("n_cases", None)
    for blocks in metrics["systems"].values():
        for block in blocks.values():
            block.pop("n", None)
    path.write_text(json.dumps(metrics))
    html = write_report(run)[0].read_text()
    assert " 0 test cases" not in html and "on the test cases" in html


def test_exact_p_values_and_non_zero_differences_in_the_comparisons(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    path = run / "evaluate/metrics.json"
    metrics = json.loads(path.read_text())
    first = metrics["comparisons"][0]
    first.update(p_value=3.52e-77, p_holm=float("nan"), n=400, n_nonzero=368)
    first["effect_size"] = float("inf")
    path.write_text(json.dumps(metrics))
    html = write_report(run)[0].read_text()
    table = _table(html, "comparisons")
    assert '&lt;0.001<span class="sub">3.5e-77</span>' in table
    assert '<span class="sub">368 non-zero</span>' in table
    assert "inf" not in table and "nan" not in table.lower()


def test_odd_funnel_and_review_files_are_named_not_tracebacks(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    (run / "curate/funnel.json").write_text('{"steps": []}')
    (run / "review").mkdir(exist_ok=True)
    (run / "review/review_metrics.json").write_text("[]")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a section that fails with an exception warns
        html = write_report(run)[0].read_text()
    missing = _missing_lines(html)
    assert any("lists no curation steps" in line for line in missing)
    assert any("review_metrics.json: expected a JSON object" in line for line in missing)


def test_a_run_that_logged_once_still_draws_its_point(tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_png", lambda figure: drawn.append(figure) or b"\x89PNG")
    figures.training_curves_png({"training loss": ([5.0], [4.76])}, xlabel="Optimizer step")
    line = drawn[0].axes[0].get_lines()[0]
    assert line.get_marker() == "o"


def test_confusion_titles_are_inside_the_figure(monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "_png", lambda figure: drawn.append(figure) or b"\x89PNG")
    labels = ["photon", "proton", "electron", "brachytherapy", "(malformed)"]
    matrix = [[331, 1, 0, 3, 0], [4, 14, 0, 0, 0], [3, 0, 17, 0, 0], [5, 0, 1, 21, 0]]
    figures.confusion_png([("Original model", labels, matrix), ("Fine-tuned", labels, matrix)])
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = drawn[0]
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    top = figure.bbox.y1
    for axes in figure.axes:
        assert axes.title.get_window_extent(renderer).y1 <= top


def test_an_answer_that_echoes_the_note_is_cut_in_the_examples(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    path = run / "evaluate/per_case.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    echo = "Diagnosis: " + "patient history " * 60
    for row in rows:
        if row["system"] == "base" and row["task"] == "regimen":
            row["prediction"] = echo
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = _table(write_report(run)[0].read_text(), "examples")
    assert echo.strip() not in table and "patient history …" in table


def test_examples_of_a_real_export_leave_out_notes_and_case_ids(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["config"]["export"] = {"synthetic": None, "path": "exports/aria-2024"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    cases = [json.loads(line) for line in (run / "split/test.jsonl").read_text().splitlines()]
    quoted = _table(write_report(run_dir)[0].read_text(), "examples")  # the synthetic run
    assert "Diagnosis note (excerpt)" in quoted
    assert any(case["case_id"] in quoted for case in cases)
    hidden = _table(write_report(run, tmp_path / "report")[0].read_text(), "examples")
    assert "Diagnosis note (excerpt)" not in hidden and "Example 1" in hidden
    assert not any(case["case_id"] in hidden for case in cases)
    assert not any(case["diagnosis_text"][:40] in hidden for case in cases)
    shown = write_report(run, tmp_path / "shown", patient_text=True)[0].read_text()
    assert "Diagnosis note (excerpt)" in _table(shown, "examples")


@pytest.mark.parametrize(
    "p,shown",
    [(0.0496, "0.0496"), (0.05, "0.05"), (0.0012, "0.0012"), (0.0009, "<0.001"), (0.125, "0.125")],
)
def test_p_values_near_the_threshold_keep_their_digits(p, shown):
    from radonc_llm.evaluate.report_document import fmt_p

    assert fmt_p(p) == shown


def test_a_review_export_whose_files_changed_since_is_called_incomplete(tmp_path):
    from radonc_llm.evaluate.report import build_report
    from radonc_llm.review.export import write_export_files

    review = tmp_path / "run" / "review"
    rating = {"item_id": "i1", "rating": "acceptable"}
    write_export_files(review, [rating], [{"event": "rated"}], {"study_id": "s"})

    def notes() -> list[str]:
        section = next(s for s in build_report(tmp_path / "run").sections if s.key == "review")
        return [b.text for b in section.blocks if getattr(b, "kind", "") == "note"]

    assert not any("incomplete" in note for note in notes())
    (review / "audit_log.jsonl").write_text("")  # as a kill during the renames would leave it
    (note,) = [n for n in notes() if "incomplete" in n]
    assert "audit_log.jsonl is not the file(s)" in note and "review export" in note


def test_a_review_with_one_reviewer_says_why_cohens_kappa_is_missing(tmp_path):
    from radonc_llm.evaluate.report import build_report
    from radonc_llm.review.export import write_export_files

    review = tmp_path / "run" / "review"
    note = "Cohen's kappa needs at least two reviewers; the ratings come from 1 reviewer (alice)"
    agreement = {"cohen_kappa": [], "cohen_kappa_note": note, "n_reviewers": 1}
    acceptability = {"finetuned": {"n": 1, "acceptable_rate": 1.0, "acceptable_ci95": [0.2, 1]}}
    metrics = {"study_id": "s", "acceptability": acceptability, "agreement": agreement}
    write_export_files(review, [{"item_id": "i1", "rating": "acceptable"}], [], metrics)

    section = next(s for s in build_report(tmp_path / "run").sections if s.key == "review")
    (table,) = [b for b in section.blocks if getattr(b, "key", "") == "review-agreement"]
    rows = [[getattr(cell, "text", cell) for cell in row] for row in table.rows]
    assert ["Cohen's kappa", "–", "–", note] in rows
