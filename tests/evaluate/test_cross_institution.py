"""Cross-institution metrics, paired tests and habits, on cases and scores made up by hand."""

from __future__ import annotations

import pytest

from radonc_llm.data.cases import Case
from radonc_llm.evaluate.cross_institution import (
    concurrent_given,
    concurrent_given_match,
    habit_shares,
    institution_schemes,
    scheme_of,
    transfer_metrics,
)


def oropharynx_case(case_id: str, regimen: str, icd10: str = "C10.9") -> Case:
    """A photon-treated oropharynx case (the cross-institution tests' and report tests')."""
    return Case(
        case_id=case_id,
        patient_id=case_id,
        diagnosis_text="Oropharynx primary, T2 N1 M0.",
        regimen=regimen,
        modality="photon",
        icd10=icd10,
    )


def test_scheme_of_reads_dose_and_fractions():
    assert scheme_of("70 Gy in 35 fractions with concurrent chemotherapy") == "70 Gy/35"
    assert scheme_of("69.96 Gy/33 fx") == "69.96 Gy/33"
    assert scheme_of("7000 cGy in 35 fractions") == "70 Gy/35"
    assert scheme_of("70 Gy") is None  # no fraction count, no scheme
    assert scheme_of("radiotherapy as per protocol") is None
    assert scheme_of(None) is None


@pytest.mark.parametrize(
    ("text", "given"),
    [
        ("70 Gy in 35 fractions with concurrent chemotherapy", True),
        ("70 Gy in 35 fractions with concurrent EGFR inhibitor", True),
        ("69.96 Gy in 33 fractions with concurrent cisplatin every 3 weeks", True),
        ("70 Gy/35 fx chemoradiotherapy", True),
        ("60 Gy in 25 fractions", False),
        ("chemotherapy and radiotherapy", None),  # no dose: no decision to score
    ],
)
def test_concurrent_given_reads_drugs_and_drug_classes(text, given):
    assert concurrent_given(text) is given


def test_concurrent_match_is_given_or_not_and_unreadable_scores_zero():
    reference = "70 Gy in 35 fractions with concurrent chemotherapy"
    assert concurrent_given_match(reference, "70 Gy in 33 fractions with weekly cisplatin") == 1
    assert concurrent_given_match(reference, "70 Gy in 33 fractions with concurrent cisplatin") == 1
    assert concurrent_given_match(reference, "66 Gy in 30 fractions") == 0
    assert concurrent_given_match("66 Gy in 30 fractions", "66 Gy/30") == 1
    assert concurrent_given_match("66 Gy in 30 fractions", "no idea") == 0


def test_institution_schemes_by_hand():
    cases = [
        oropharynx_case("a", "70 Gy in 35 fractions"),
        oropharynx_case("b", "70 Gy in 35 fractions with concurrent chemotherapy"),
        oropharynx_case("c", "68 Gy in 34 fractions"),
        oropharynx_case("d", "70 Gy in 33 fractions"),
    ]
    summary = institution_schemes(cases, top=2)
    assert summary["habit"] == "70 Gy/35" and summary["n"] == 4 and summary["n_schemes"] == 3
    first, second = summary["schemes"]
    assert (first["count"], first["share"], first["dose_per_fraction"]) == (2, 0.5, 2.0)
    assert first["eqd2"] == pytest.approx(70.0)
    assert second["scheme"] == "68 Gy/34"  # ties keep the order first seen


def _rows(system: str, cases, regimens, categories) -> list[dict]:
    from radonc_llm.evaluate.metrics import regimen_case_scores, rouge_f

    rows = []
    for case, text, category in zip(cases, regimens, categories, strict=True):
        rows.append(
            {
                "system": system,
                "case_id": case.case_id,
                "task": "regimen",
                "prediction": text,
                "rouge1_f": rouge_f(case.regimen, text)[0],
                **regimen_case_scores(case.regimen, text),
            }
        )
        rows.append(
            {
                "system": system,
                "case_id": case.case_id,
                "task": "icd10",
                "category_correct": category,
            }
        )
    return rows


def test_transfer_metrics_and_one_sided_tests_by_hand():
    cases = [oropharynx_case(str(i), "68 Gy in 34 fractions") for i in range(8)]
    tuned = ["68 Gy in 34 fractions"] * 6 + ["70 Gy in 35 fractions", "unclear"]
    base = ["70 Gy in 35 fractions"] * 7 + ["unclear"]
    per_case = _rows("tuned", cases, tuned, [1] * 8) + _rows("base", cases, base, [0] * 8)
    result = transfer_metrics(cases, per_case, systems=["base", "tuned"], n_resamples=200)

    tuned_block = result["systems"]["tuned"]
    assert tuned_block["dose_agreement"]["value"] == pytest.approx(6 / 8)
    assert tuned_block["concurrent_agreement"]["value"] == pytest.approx(7 / 8)  # one unreadable
    # Errors only where the answer states dose and fractions: 7 of 8 answers.
    assert tuned_block["eqd2_error"]["n"] == 7
    assert tuned_block["eqd2_error"]["value"] == pytest.approx(2.0 / 7)  # 70/35 vs 68/34: 2 Gy
    assert tuned_block["dose_per_fraction_error"]["value"] == pytest.approx(0.0)
    assert tuned_block["readable_regimen"]["value"] == pytest.approx(7 / 8)
    assert result["systems"]["base"]["dose_agreement"]["value"] == 0.0

    tests = {c["metric"]: c for c in result["comparisons"]}
    assert all(c["system"] == "tuned" and c["baseline"] == "base" for c in tests.values())
    # McNemar: 6 discordant pairs, all won by the tuned model -> p = 0.5^6 (one-sided).
    dose = tests["dose_agreement"]
    assert (dose["test"], dose["alternative"], dose["n_nonzero"]) == ("mcnemar_exact", "greater", 6)
    assert dose["p_value"] == pytest.approx(0.5**6)
    icd = tests["icd10_category"]
    assert icd["p_value"] == pytest.approx(0.5**8)
    # EQD2 error: tested on the 7 cases both state, the tuned model errs less.
    eqd2 = tests["eqd2_error"]
    assert (eqd2["test"], eqd2["alternative"], eqd2["n"]) == ("wilcoxon", "less", 7)
    assert eqd2["p_value"] < 0.05 and eqd2["effect_size"] < 0
    # Holm across the seven metrics: the smallest p is multiplied by 7.
    assert icd["p_holm"] == pytest.approx(min(1.0, 7 * 0.5**8))
    assert all(c["p_holm"] >= c["p_value"] for c in tests.values())


def test_habit_shares_by_hand():
    cases = [oropharynx_case(str(i), "68 Gy in 34 fractions") for i in range(4)]
    cases.append(oropharynx_case("4", "70 Gy in 35 fractions"))
    predictions = {
        "tuned": {"0": "70 Gy in 35 fractions", "1": "70 Gy/35", "2": "68 Gy/34 fx",
                  "3": "nothing", "4": "60 Gy in 25 fractions"},
    }  # fmt: skip
    result = habit_shares(cases, predictions, training_habit="70 Gy/35", local_habit="68 Gy/34")
    tuned = result["systems"]["tuned"]
    assert tuned["training_habit"]["value"] == pytest.approx(2 / 5)
    assert tuned["local_habit"]["value"] == pytest.approx(1 / 5)
    assert tuned["other"]["value"] == pytest.approx(1 / 5)
    assert tuned["unreadable"]["value"] == pytest.approx(1 / 5)
    assert tuned["prescribed_scheme"]["value"] == pytest.approx(1 / 5)
    local = tuned["local_habit_patients"]
    assert local["n"] == 4 and local["training_habit"]["value"] == pytest.approx(2 / 4)
    assert tuned["top_schemes"][0] == ["70 Gy/35", 2]
    prescribed = result["systems"]["prescribed"]
    assert prescribed["local_habit"]["value"] == pytest.approx(4 / 5)
    assert prescribed["training_habit"]["value"] == pytest.approx(1 / 5)

    same = habit_shares(cases, predictions, training_habit="68 Gy/34", local_habit="68 Gy/34")
    assert same["same_habit"] and "local_habit_patients" not in same["systems"]["tuned"]


# --- tiny n, one class, two institutions -------------------------------------------------------


def test_shares_at_tiny_n_have_wilson_intervals_not_a_point():
    # 2 of 2 agreements: a percentile bootstrap gives [100%, 100%], as if certain.
    cases = [oropharynx_case(str(i), "68 Gy in 34 fractions") for i in range(2)]
    per_case = _rows("tuned", cases, ["68 Gy in 34 fractions"] * 2, [1, 1]) + _rows(
        "base", cases, ["70 Gy in 35 fractions"] * 2, [0, 0]
    )
    result = transfer_metrics(cases, per_case, systems=["base", "tuned"], n_resamples=200)
    dose = result["systems"]["tuned"]["dose_agreement"]
    # Wilson score interval of 2/2 by hand: centre (2 + z²/2)/(2 + z²), half-width
    # z sqrt(z²/4)/(2 + z²), z = 1.959964.
    z = 1.959963984540054
    centre, half = (2 + z**2 / 2) / (2 + z**2), z * (z**2 / 4) ** 0.5 / (2 + z**2)
    assert dose["ci95"] == pytest.approx([centre - half, 1.0])
    assert dose["ci95"][0] == pytest.approx(0.3424, abs=1e-4)
    assert dose["ci_method"] == "wilson" and result["ci_methods"]["share"] == "wilson"
    # One case still has an interval; base agreed with none of them: [0, 0.658].
    one = transfer_metrics(cases[:1], per_case, systems=["base", "tuned"], n_resamples=200)
    assert one["systems"]["tuned"]["icd10_category"]["ci95"][0] == pytest.approx(0.2065, abs=1e-4)
    assert result["systems"]["base"]["dose_agreement"]["ci95"][1] == pytest.approx(0.6576, abs=1e-4)


def test_a_cohort_of_one_modality_is_scored_when_the_recipe_asks_for_modality():
    cases = [oropharynx_case(str(i), "70 Gy in 35 fractions") for i in range(3)]
    per_case = [
        {"system": system, "case_id": case.case_id, "task": "modality", "correct": correct}
        for system, correct in (("base", 0), ("tuned", 1))
        for case in cases
    ]
    result = transfer_metrics(cases, per_case, systems=["base", "tuned"], n_resamples=50)
    assert result["systems"]["tuned"]["modality_accuracy"]["value"] == 1.0
    test = next(c for c in result["comparisons"] if c["metric"] == "modality_accuracy")
    assert test["test"] == "mcnemar_exact" and test["p_value"] == pytest.approx(0.5**3)
    assert test["holm_family_size"] == 1


def test_institution_gaps_are_unpaired_two_sided_tests():
    from radonc_llm.evaluate.cross_institution import institution_gaps

    internal = [oropharynx_case(f"i{i}", "70 Gy in 35 fractions") for i in range(8)]
    external = [oropharynx_case(f"e{i}", "68 Gy in 34 fractions") for i in range(6)]
    internal_rows = _rows("tuned", internal, ["70 Gy in 35 fractions"] * 8, [1] * 8)
    # The tuned model keeps proposing 70 Gy/35 elsewhere: 1 of 6 right.
    answers = ["68 Gy in 34 fractions"] + ["70 Gy in 35 fractions"] * 5
    external_rows = _rows("tuned", external, answers, [1, 0, 0, 0, 0, 0])
    rows = institution_gaps(
        (internal, internal_rows), {"hn1": (external, external_rows)}, systems=["tuned"]
    )
    dose = next(r for r in rows if r["metric"] == "dose_agreement")
    assert (dose["cohort"], dose["n_internal"], dose["n_external"]) == ("hn1", 8, 6)
    assert dose["test"] == "fisher_exact"  # different patients: never McNemar
    # Fisher's exact, two-sided, by hand: 9 agreements among 14 patients, 6 external; the
    # tables at least as unlikely as 1 of 6 have probability C(9,1) C(5,5) / C(14,6) = 9/3003.
    assert dose["p_value"] == pytest.approx(9 / 3003)
    assert dose["difference"] == pytest.approx(1 / 6 - 1)
    low, high = dose["difference_ci95"]
    assert low < dose["difference"] < high < 0
    eqd2 = next(r for r in rows if r["metric"] == "eqd2_error")
    assert eqd2["test"] == "mann_whitney_u"
    # Every internal error is 0, 5 of 6 external ones 2 Gy: U = 5*8*1 + 1*8*0.5 = 44 of 48.
    assert eqd2["effect_size"] == pytest.approx(2 * 44 / 48 - 1)
    assert all(r["p_holm"] >= r["p_value"] for r in rows if r["p_value"] is not None)
    assert {r["holm_family_size"] for r in rows if r["p_value"] is not None} == {7}


def test_no_readable_habit_is_not_the_same_habit_and_unreadable_is_not_a_habit():
    cases = [
        oropharynx_case("0", "68 Gy in 34 fractions"),
        oropharynx_case("1", "68 Gy in 34 fractions"),
    ]
    result = habit_shares(
        cases, {"tuned": {"0": "no idea", "1": "68 Gy/34"}}, training_habit=None,
        local_habit="68 Gy/34",
    )  # fmt: skip
    assert result["same_habit"] is False
    local = result["systems"]["tuned"]["local_habit_patients"]
    assert local["training_habit"]["value"] == 0.0  # the unreadable answer is no habit
