"""Second courses, answers that give no radiotherapy, and counts that are not whole numbers.

Every expectation is what a radiation oncologist reads in the text, checked by hand.
"""

import pytest

from radonc_llm.data.regimen import parse_regimen, regimen_text_problem, render_regimen, total_eqd2


def course(text: str) -> tuple:
    r = parse_regimen(text)
    return r.dose_gy, r.fractions, r.boost


# -- a second course to a sub-volume is a sequential boost ---------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50 Gy/25 fx to breast, 10 Gy/5 fx to tumour bed", (50, 25, "10 Gy in 5 fractions")),
        (
            "50 Gy in 25 fractions to the whole breast followed by 16 Gy in 8 fractions to the "
            "cavity",
            (50, 25, "16 Gy in 8 fractions"),
        ),
        ("46 Gy/23 fx to the pelvis; 18 Gy/9 fx to the prostate", (46, 23, "18 Gy in 9 fractions")),
        ("50 Gy/25 fx to elective nodes, 20 Gy/10 fx to GTV", (50, 25, "20 Gy in 10 fractions")),
        ("42.56 Gy/16 fx, sequential 10 Gy/4 fx tumour bed", (42.56, 16, "10 Gy in 4 fractions")),
        ("50 Gy/25 fx to breast, 10 Gy to tumour bed", (50, 25, "10 Gy")),
        ("30 Gy/10 fx to the brain, SRS 20 Gy to cavity", (30, 10, "20 Gy SRS")),
        # Brachytherapy after external beam, in a statement of its own.
        ("EBRT 45 Gy/25 fx; HDR 28 Gy/4 fx", (45, 25, "28 Gy in 4 fractions HDR")),
        ("EBRT 45/25 + HDR 7x3", (45, 25, "21 Gy in 3 fractions HDR")),
    ],
)
def test_second_course_to_a_sub_volume_is_a_boost(text, expected):
    assert course(text) == expected


def test_boost_without_the_keyword_adds_its_own_eqd2():
    # 50 Gy/25 (EQD2 50) + 10 Gy/5 (EQD2 10): 60 Gy, alpha/beta 10.
    regimen = parse_regimen("50 Gy/25 fx to breast, 10 Gy/5 fx to tumour bed")
    assert total_eqd2(regimen) == pytest.approx(60.0)
    # 45 Gy/25 (44.25) + HDR 7 Gy x 3 (21 * 1.7 / 1.2 = 29.75).
    assert total_eqd2(parse_regimen("EBRT 45/25 + HDR 7x3")) == pytest.approx(74.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A higher dose to a sub-volume is a cumulative dose level, not a boost on top.
        ("45 Gy/25 fx to pelvis, 50.4 Gy/28 fx to primary", (50.4, 28, None)),
        # The same fraction count: integrated levels.
        ("70 Gy/35 fx to the nodes, 56 Gy/35 fx to the GTV", (70, 35, None)),
        # A lower dose to a larger volume is a level too.
        (
            "60 Gy in 30 fractions to the primary, 50 Gy in 25 fractions to the nodes",
            (60, 30, None),
        ),
        ("54 Gy in 30 fx to elective nodes, 70 Gy to GTV", (70, None, None)),
    ],
)
def test_dose_levels_are_not_boosts(text, expected):
    assert course(text) == expected


# -- courses to unrelated sites ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "main", "others"),
    [
        ("8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip", (8, 1), ["20 Gy in 5 fractions"]),
        ("20 Gy/5 fx to L hip, 8 Gy/1 fx to T-spine", (20, 5), ["8 Gy in 1 fraction"]),
        (
            "8 Gy x 1 to the left hip; 20 Gy/5 fx to the lumbar spine",
            (8, 1),
            ["20 Gy in 5 fractions"],
        ),
        ("8 Gy x 1 to rib; SBRT 30 Gy/5 fx to liver", (8, 1), ["30 Gy in 5 fractions SBRT"]),
        (
            "30 Gy/10 fx to spine, 8 Gy x 1 to hip and 20 Gy/5 fx to humerus",
            (30, 10),
            ["8 Gy in 1 fraction", "20 Gy in 5 fractions"],
        ),
    ],
)
def test_courses_to_unrelated_sites_keep_the_first_listed_as_main(text, main, others):
    regimen = parse_regimen(text)
    assert (regimen.dose_gy, regimen.fractions) == main
    assert regimen.boost is None
    assert regimen.other_courses == others
    # The technique of another site's course is not the main course's.
    assert regimen.technique is None


def test_other_courses_round_trip_and_are_not_summed():
    regimen = parse_regimen("8 Gy/1 fx to T-spine, 20 Gy/5 fx to L hip")
    assert render_regimen(regimen) == "8 Gy in 1 fraction; 20 Gy in 5 fractions to another site"
    assert parse_regimen(render_regimen(regimen)) == regimen
    assert total_eqd2(regimen) == pytest.approx(12.0)  # 8 Gy x 1: 8 * 1.8 / 1.2


@pytest.mark.parametrize(
    "text",
    ["8 Gy in 1 fx; may repeat 8 Gy x 1 if needed", "70 Gy/35 fx", "45 Gy/25 fx; VMAT"],
)
def test_a_single_site_has_no_other_courses(text):
    assert "other_courses" not in parse_regimen(text).model_dump()


# -- answers that give no radiotherapy -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Observation",
        "Observation only",
        "active surveillance",
        "Watchful waiting",
        "No radiotherapy",
        "No adjuvant RT",
        "declined RT",
        "Patient declined radiation",
        "RT not indicated",
        "Not for radiotherapy",
        "Best supportive care",
        "Surgery alone",
        "Chemotherapy only",
    ],
)
def test_text_without_radiotherapy_is_flagged(text):
    problem = regimen_text_problem(text)
    assert problem is not None
    assert problem.startswith("not a radiotherapy regimen")
    assert parse_regimen(text).dose_gy is None


@pytest.mark.parametrize(
    "text",
    [
        "60 Gy in 30 fractions",
        "60.0 Gy in 30.0 fractions",
        "60 Gy/30 fx then observation",
        "70 Gy/35 fx, no chemo",
        "50 Gy/25 fx; declined chemotherapy",
        "40,05 Gy/15 fx",
        "70 Gy/63.5 Gy",
    ],
)
def test_regimens_are_not_flagged(text):
    assert regimen_text_problem(text) is None


# -- fraction counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["60.0 Gy in 30.0 fractions", "60 Gy/30.0 fx", "Dose: 60 Gy; Fractions: 30.0"]
)
def test_whole_counts_written_as_decimals_are_read(text):
    assert (parse_regimen(text).dose_gy, parse_regimen(text).fractions) == (60, 30)


@pytest.mark.parametrize(
    "text", ["60 Gy in 30.5 fractions", "60 Gy/30.5 fx", "60 Gy/30.5", "Fractions: 30.5"]
)
def test_counts_that_are_not_whole_are_flagged_not_rounded(text):
    assert parse_regimen(text).fractions is None
    assert "not a whole number" in regimen_text_problem(text)


# -- more notations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dose", "fractions"),
    [
        ("8Gy single", 8, 1),
        ("8 Gy once", 8, 1),
        ("single 8 Gy", 8, 1),
        ("single dose of 8 Gy", 8, 1),
        ("HDR 7x3", 21, 3),
        ("SBRT 18x3", 54, 3),
        # "once weekly" is a schedule, not one fraction.
        ("30 Gy in 5 fractions once weekly", 30, 5),
        # Without a brachytherapy or stereotactic technique the order of "7x3" is unclear.
        ("7x3", None, None),
    ],
)
def test_single_fractions_and_unit_less_products(text, dose, fractions):
    regimen = parse_regimen(text)
    assert (regimen.dose_gy, regimen.fractions) == (dose, fractions)


def test_total_skin_electrons_is_tsebt():
    assert parse_regimen("total skin electrons 36 Gy in 18 fractions").technique == "TSEBT"
