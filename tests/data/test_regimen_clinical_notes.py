"""Regimens as radiation oncologists write them in notes and plan summaries.

Every expectation is what a radiation oncologist reads in the text, checked by hand; where the
text does not say (a fraction count that may belong to another dose level, a dose stopped
early), the parser must answer None rather than a guess.
"""

import pytest

from radonc_llm.data.regimen import eqd2, parse_regimen
from radonc_llm.evaluate.metrics import regimen_case_scores


def parts(text: str) -> dict:
    return parse_regimen(text).model_dump(exclude_none=True, exclude_defaults=True)


# -- shorthand ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("70/35", {"dose_gy": 70, "fractions": 35}),
        ("70 Gy/35#", {"dose_gy": 70, "fractions": 35}),
        ("2 Gy x 35", {"dose_gy": 70, "fractions": 35}),
        ("35 x 2 Gy", {"dose_gy": 70, "fractions": 35}),
        ("2 Gy × 35", {"dose_gy": 70, "fractions": 35}),
        ("7000 cGy", {"dose_gy": 70}),
        ("70 Gy (RBE)", {"dose_gy": 70, "dose_unit": "GyRBE"}),
        ("70 Gy (RBE)/35 fx", {"dose_gy": 70, "fractions": 35, "dose_unit": "GyRBE"}),
        ("70 GyE/35 fx", {"dose_gy": 70, "fractions": 35, "dose_unit": "GyRBE"}),
        ("70 CGE", {"dose_gy": 70, "dose_unit": "GyRBE"}),
        ("SBRT 50 Gy in 5", {"dose_gy": 50, "fractions": 5, "technique": "SBRT"}),
        ("SBRT 50 Gy in 5.", {"dose_gy": 50, "fractions": 5, "technique": "SBRT"}),
        ("SABR 54/3", {"dose_gy": 54, "fractions": 3, "technique": "SBRT"}),
        ("HDR 7 Gy x 3", {"dose_gy": 21, "fractions": 3, "technique": "HDR"}),
        ("LDR I-125 145 Gy", {"dose_gy": 145, "technique": "LDR"}),
        ("BID 1.5 Gy to 45 Gy", {"dose_gy": 45, "fractions": 30, "schedule": "BID"}),
        ("hypofractionated 40.05 Gy/15", {"dose_gy": 40.05, "fractions": 15}),
        ("26 Gy/5 (FAST-Forward)", {"dose_gy": 26, "fractions": 5}),
        ("8 Gy single fraction.", {"dose_gy": 8, "fractions": 1}),
        ("20 Gy/5 palliative", {"dose_gy": 20, "fractions": 5}),
        ("70 GY IN 35 FRACTIONS.", {"dose_gy": 70, "fractions": 35}),
        # A hedged dose is still the one number written.
        ("approx. 60 Gy in 30 fx", {"dose_gy": 60, "fractions": 30}),
        ("≈60 Gy/30 fx", {"dose_gy": 60, "fractions": 30}),
        # Ranges are guidelines, not a prescription.
        ("60-66 Gy", {}),
        ("60–66 Gy in 30–33 fx", {}),
        # Radium-223 is dosed in kBq/kg, not Gy: no course to read.
        ("Ra-223 55 kBq/kg x 6", {}),
    ],
)
def test_shorthand_reads_as_written(text, expected):
    assert parts(text) == expected


# -- doses in words -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dose", "fractions"),
    [
        ("sixty Gy in thirty fractions", 60, 30),
        ("seventy Gy", 70, None),
        ("Seventy Gy, thirty-five fractions", 70, 35),
        ("forty-five Gy in twenty-five fractions", 45, 25),
        ("fifty point four Gy in twenty eight fractions", 50.4, 28),
        ("eight Gy single fraction", 8, 1),
        ("forty five hundred cGy in 25 fractions", 45, 25),
        ("seven thousand centigray", 70, None),
    ],
)
def test_doses_written_in_words(text, dose, fractions):
    regimen = parse_regimen(text)
    assert (regimen.dose_gy, regimen.fractions) == (dose, fractions)


def test_a_count_word_before_a_dose_is_still_the_count():
    # "five 5 Gy fractions" is five fractions of 5 Gy, not a dose of "five".
    assert parts("five 5 Gy fractions") == {"dose_gy": 25, "fractions": 5}


# -- courses in parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "30 Gy/10 fx, 2-week break, then 30 Gy/10 fx",
        "30 Gy/10 fx, 2 week break, 30 Gy/10 fx",
        "split course 30 Gy/10 fx then 30 Gy/10 fx",
        "30 Gy/10 fx then 30 Gy/10 fx after a 2-week break",
    ],
)
def test_split_course_is_one_prescription_not_a_boost(text):
    assert parts(text) == {"dose_gy": 60, "fractions": 20}


def test_split_course_parts_may_differ():
    assert parts("30 Gy/10 fx, 4 week gap, 20 Gy/5 fx") == {"dose_gy": 50, "fractions": 15}


@pytest.mark.parametrize(
    ("text", "boost"),
    [
        # EBRT then brachytherapy after a gap is a course and a boost, never one sum.
        ("45 Gy/25 fx, 1-week gap, then HDR 7 Gy x 4", "28 Gy in 4 fractions HDR"),
        ("45 Gy/25 fx then boost 9 Gy/5 fx after a 1-week break", "9 Gy in 5 fractions"),
    ],
)
def test_a_break_before_a_boost_or_brachytherapy_is_no_split_course(text, boost):
    assert parts(text) == {"dose_gy": 45, "fractions": 25, "boost": boost}


def test_a_break_within_one_course_changes_nothing():
    assert parts("60 Gy/30 fx, treatment break of 5 days") == {"dose_gy": 60, "fractions": 30}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EBRT 45 Gy + HDR boost 7 Gy x 3", {"dose_gy": 45, "boost": "21 Gy in 3 fractions HDR"}),
        ("45 Gy + 9 Gy boost", {"dose_gy": 45, "boost": "9 Gy"}),
        (
            "45 Gy/25 fx → HDR 7 Gy × 3",
            {"dose_gy": 45, "fractions": 25, "boost": "21 Gy in 3 fractions HDR"},
        ),
    ],
)
def test_boosts_on_another_modality_stay_boosts(text, expected):
    assert parts(text) == expected


def test_total_eqd2_of_ebrt_and_hdr_boost_is_the_sum_of_each_course():
    regimen = parse_regimen("EBRT 45 Gy/25 fx + HDR boost 7 Gy x 3")
    boost = parse_regimen(regimen.boost)
    assert (boost.dose_gy, boost.fractions, boost.technique) == (21, 3, "HDR")
    main_eqd2 = eqd2(regimen.dose_gy, regimen.fractions)
    boost_eqd2 = eqd2(boost.dose_gy, boost.fractions)
    # By hand, alpha/beta 10: 45 * 1.18 / 1.2 = 44.25; 21 * 1.7 / 1.2 = 29.75.
    assert main_eqd2 == pytest.approx(44.25)
    assert boost_eqd2 == pytest.approx(29.75)
    assert main_eqd2 + boost_eqd2 == pytest.approx(74.0)
    # Lumping both into 66 Gy in 28 fractions would understate it.
    assert eqd2(66, 28) == pytest.approx(66 * (1 + 66 / 28 / 10) / 1.2)
    assert eqd2(66, 28) < 74.0 - 3


# -- several dose levels --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dose", "fractions"),
    [
        # The 30 fractions are the elective dose's: 70 Gy may be integrated (30) or sequential.
        ("54 Gy in 30 fx to elective nodes, 70 Gy to GTV", 70, None),
        ("70 Gy to GTV, 54 Gy in 30 fx to elective nodes", 70, None),
        ("60 Gy to the prostate bed, 45 Gy to pelvic nodes in 25 fractions", 60, None),
        ("45 Gy in 25 fx to the pelvis and 50.4 Gy to the primary", 50.4, None),
        ("45 Gy/25 fx to pelvis, 50.4 Gy/28 fx to primary", 50.4, 28),
        ("PTV70/PTV63/PTV56", 70, None),
        ("PTV70/PTV63/PTV56 in 35 fx", 70, 35),
        ("PTV_7000/PTV_5600 35 fx", 70, 35),
        ("PTV70 70 Gy, PTV56 56 Gy in 35 fx", 70, 35),
        ("70 Gy/35 fx to PTV70, 63 Gy to PTV63, 56 Gy to PTV56", 70, 35),
        ("SIB 66 Gy to PTV1 and 60 Gy to PTV2 in 30 fractions", 66, 30),
        ("In 35 fx: 70 Gy to GTV, 56 Gy to nodes", 70, 35),
        (
            "IMRT 70 Gy to high-risk PTV, 63 Gy to intermediate-risk, 56 Gy to low-risk "
            "in 35 fractions",
            70,
            35,
        ),
        # Organ-at-risk limits are not dose levels.
        ("70 Gy in 35 fx to PTV; cord max 45 Gy", 70, 35),
        ("50 Gy/25 fx, cord max 45 Gy", 50, 25),
    ],
)
def test_the_highest_dose_level_is_the_prescription(text, dose, fractions):
    regimen = parse_regimen(text)
    assert (regimen.dose_gy, regimen.fractions) == (dose, fractions)


@pytest.mark.parametrize("text", ["CTV 1 and CTV 2", "GTV 45 cc", "HR-CTV D90 85 Gy EQD2"])
def test_target_names_without_a_dose_level_give_no_dose(text):
    assert parse_regimen(text).dose_gy is None


def test_a_label_takes_the_unit_of_the_written_doses():
    assert parts("PTV60 60 GyRBE in 30 fx") == {
        "dose_gy": 60,
        "fractions": 30,
        "dose_unit": "GyRBE",
    }


# -- planned versus delivered ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dose", "fractions"),
    [
        ("planned 70 Gy, stopped at 46 Gy", 70, None),
        ("planned 70 Gy/35 fx, stopped at 46 Gy", 70, 35),
        ("70 Gy/35 fx planned; treatment stopped at 46 Gy/23 fx", 70, 35),
        ("treatment discontinued at 46 Gy/23 fx of planned 70 Gy/35 fx", 70, 35),
        ("Stopped at fraction 23 of 35; Rx 70 Gy/35 fx", 70, 35),
        ("70 Gy/35 fx, interrupted at 40 Gy for mucositis, completed", 70, 35),
        ("70 Gy, RT discontinued after 23 fractions", 70, None),
        # Only the delivered dose: the prescription is not written.
        ("treatment stopped at 46 Gy", None, None),
        # "46 of 70 Gy" is a tally, not 46 fractions.
        ("received 46 of 70 Gy planned", 70, None),
    ],
)
def test_the_prescription_is_the_planned_course_not_the_delivered_dose(text, dose, fractions):
    regimen = parse_regimen(text)
    assert (regimen.dose_gy, regimen.fractions) == (dose, fractions)


def test_fractions_of_a_dose_still_read():
    assert parts("35 fractions of 2 Gy") == {"dose_gy": 70, "fractions": 35}
    assert parts("35 fx at 2 Gy") == {"dose_gy": 70, "fractions": 35}


# -- concurrent therapy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "concurrent"),
    [
        ("cisplatin held after 2 cycles", ["cisplatin"]),
        ("70 Gy/35 fx with cisplatin held after 2 cycles", ["cisplatin"]),
        ("70 Gy/35 fx, cisplatin held after 2 cycles due to AKI", ["cisplatin"]),
        ("70 Gy/35 fx with cisplatin, stopped after 2 cycles", ["cisplatin"]),
        ("70 Gy/35 fx with cisplatin (discontinued after cycle 2)", ["cisplatin"]),
        ("70 GY/35 FX W/ WEEKLY CIS 40 MG/M2, HELD AFTER 4 CYCLES.", ["cisplatin"]),
        ("cisplatin 40 mg/m2 weekly held after cycle 4; 70 Gy/35 fx", ["cisplatin"]),
        # Still sequential: given after the radiotherapy.
        ("60 Gy in 30 fractions, then adjuvant TMZ", []),
        ("60 Gy/30 fx, TMZ after RT", []),
        # Still not given.
        ("70 Gy/35 fx, cisplatin held", []),
        ("70 Gy/35 fx, no chemo (age)", []),
        ("70 Gy/35 fx. chemo: none", []),
        ("70 Gy/35 fx. Chemo: nil", []),
        ("70 Gy/35 fx. Chemo: N/A", []),
        ("70 Gy/35 fx. concurrent: nil", []),
        ("70 Gy in 35 fractions with concurrent cisplatin (no cetuximab)", ["cisplatin"]),
        # Drug shorthand.
        ("60 Gy/30 fx weekly cisplatin 40 mg/m2", ["cisplatin"]),
        ("70 Gy/35 fx 3-weekly cis 100", ["cisplatin"]),
        ("70 Gy/35 fx + cetux", ["cetuximab"]),
        ("50 Gy/25 fx + cape", ["capecitabine"]),
        ("60 Gy/30 fx – concurrent TMZ", ["temozolomide"]),
        ("54 Gy/30 fx + 5-FU/MMC", ["fluorouracil", "mitomycin"]),
        ("60 Gy/30 fx + carbo/taxol", ["carboplatin", "paclitaxel"]),
        # Chemoradiation names the class; with its agent written anywhere it is that agent.
        ("70 Gy/35 fx chemo-RT", ["chemotherapy"]),
        ("70 Gy/35 fx concurrent chemoradiotherapy", ["chemotherapy"]),
        ("chemo-RT 70 Gy/35 fx with cisplatin", ["cisplatin"]),
        ("70 Gy/35 fx chemoradiation with cisplatin", ["cisplatin"]),
        # Cetuximab is not chemotherapy: both are kept.
        ("70 Gy/35 fx with cetuximab + chemo", ["cetuximab", "chemotherapy"]),
    ],
)
def test_concurrent_drugs_as_notes_write_them(text, concurrent):
    assert parse_regimen(text).concurrent == concurrent


@pytest.mark.parametrize(
    ("text", "schedule"),
    [
        ("60 Gy/30 fx weekly cisplatin 40 mg/m2", "weekly"),
        ("70 Gy/35 fx 3-weekly cis 100", "every 3 weeks"),
        ("70 Gy / 35 Fx, IMRT, Cisplatin 100 mg/m² q3w.", "every 3 weeks"),
    ],
)
def test_the_drug_schedule_is_the_drugs(text, schedule):
    regimen = parse_regimen(text)
    assert regimen.schedule is None
    assert regimen.concurrent_schedule == schedule


# -- what evaluation scores -----------------------------------------------------------------------


def test_split_course_reference_matches_its_total():
    scores = regimen_case_scores("30 Gy/10 fx, 2-week break, then 30 Gy/10 fx", "60 Gy/20 fx")
    assert scores["dose_match"] == 1
    assert scores["fractions_match"] == 1
    assert scores["eqd2_abs_error"] == pytest.approx(0.0)


def test_dose_level_reference_with_unknown_count_scores_dose_only():
    scores = regimen_case_scores("54 Gy in 30 fx to elective nodes, 70 Gy to GTV", "70 Gy/35 fx")
    assert scores["dose_match"] == 1
    assert scores["fractions_match"] is None
    assert scores["eqd2_abs_error"] is None


def test_word_dose_prediction_is_scored_like_digits():
    scores = regimen_case_scores(
        "70 Gy in 35 fractions with concurrent cisplatin",
        "seventy Gy in thirty-five fractions with concurrent cisplatin",
    )
    assert (scores["dose_match"], scores["fractions_match"], scores["concurrent_match"]) == (
        1,
        1,
        1,
    )
