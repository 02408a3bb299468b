import pytest

from radonc_llm.data import icd10

# Codes named in the domain reference, all billable ICD-10-CM codes.
REFERENCE_CODES = [
    "C61",
    "C50.412",
    "C50.911",
    "C34.11",
    "C34.2",
    "C09.9",
    "C32.0",
    "C71.1",
    "D32.0",
    "C79.31",
    "C79.51",
    "C20",
    "C21.0",
    "C15.5",
    "C25.0",
    "C22.0",
    "C53.9",
    "C54.1",
    "C67.9",
    "C62.91",
    "C44.310",
    "C4A.30",
    "C84.00",
    "L91.0",
    "C81.12",
    "C83.38",
    "C88.40",
    "C41.0",
    "C69.31",
    "C71.6",
    "D44.4",
    "D33.3",
    "G50.0",
    "C37",
    "C45.0",
]


@pytest.mark.parametrize(
    ("raw", "key"),
    [(" C50.412 ", "c50412"), ("c50412", "c50412"), ("C61", "c61"), ("C50. 412", "c50412")],
)
def test_normalize(raw, key):
    assert icd10.normalize(raw) == key


@pytest.mark.parametrize(
    ("raw", "dotted"),
    [
        ("c50412", "C50.412"),
        ("C50.412", "C50.412"),
        (" c50.412\n", "C50.412"),
        ("C61", "C61"),
        ("c4a30", "C4A.30"),
        ("S72001A", "S72.001A"),
        ("\uff23\uff15\uff10\uff0e\uff14\uff11\uff12", "C50.412"),  # full-width
        ("C50.\u00a0412", "C50.412"),  # no-break space
        ("C50.4\u200b12", "C50.412"),  # zero-width space
        # Not codes: a best-effort upper-case form, never an exception.
        ("photon", "PHOTON"),
        ("c00-c96", "C00-C96"),
        ("", ""),
        ("12", "12"),
        # A dot anywhere but after the category is not moved there.
        ("C504.12", "C504.12"),
        ("c5.0412", "C5.0412"),
        ("C50.4.12", "C50.4.12"),
    ],
)
def test_to_dotted(raw, dotted):
    assert icd10.to_dotted(raw) == dotted


@pytest.mark.parametrize("code", REFERENCE_CODES)
def test_reference_codes_are_valid_and_billable(code):
    assert icd10.is_valid(code)
    assert icd10.is_billable(code)
    assert icd10.is_billable(code.replace(".", "").lower())


@pytest.mark.parametrize(
    ("code", "valid", "billable"),
    [
        ("C50", True, False),  # category
        ("C50.4", True, False),  # subcategory
        ("c50.41", True, False),
        ("S72.001", True, False),  # needs a 7th character
        ("S72.001A", True, True),
        ("C50.999", False, False),  # shaped like a code, not in ICD-10-CM
        ("C99", False, False),
        ("2", False, False),  # a chapter is not a code
        ("C00-C96", False, False),  # nor is a block
        ("C50-C50", False, False),
        ("photon", False, False),
        ("", False, False),
        ("C61.", True, True),
        ("\uff23\uff16\uff11", True, True),  # full-width C61
        ("C509.11", False, False),  # a misplaced dot is not C50.911
        ("C5.0911", False, False),
        ("C50.911.", False, False),  # two dots: left to find_codes, which reads a full stop
        # ICD-10-WHO is not ICD-10-CM: C61.9 does not exist, C34.9 needs laterality.
        ("C61.9", False, False),
        ("C34.9", True, False),
        ("61.0", False, False),  # a spreadsheet's number, not a code
    ],
)
def test_validity_and_billability(code, valid, billable):
    assert icd10.is_valid(code) is valid
    assert icd10.is_billable(code) is billable


def test_hierarchy_of_a_breast_code():
    code = "c50412"
    assert icd10.category(code) == "C50"
    # C50 is alone in its block: the package names that block "C50"; we show it as a range.
    assert icd10.block(code) == "C50-C50"
    assert icd10.chapter(code) == "2"
    assert icd10.chapter_title(code) == "Neoplasms (C00-D49)"
    assert icd10.title(code) == "Malignant neoplasm of upper-outer quadrant of left female breast"


@pytest.mark.parametrize(
    ("code", "block", "chapter"),
    [
        ("C61", "C60-C63", "2"),
        ("C79.31", "C76-C80", "2"),
        ("C4A.30", "C43-C44", "2"),
        ("D32.0", "D10-D36", "2"),
        ("L91.0", "L80-L99", "12"),
        ("G50.0", "G50-G59", "6"),
        ("S72.001A", "S70-S79", "19"),
    ],
)
def test_block_and_chapter(code, block, chapter):
    assert icd10.block(code) == block
    assert icd10.chapter(code) == chapter


def test_made_up_subcode_sits_under_its_real_category():
    assert not icd10.is_valid("C50.999")
    assert icd10.category("C50.999") == "C50"
    assert icd10.chapter("C50.999") == "2"


@pytest.mark.parametrize("call", [icd10.block, icd10.chapter, icd10.chapter_title])
def test_position_of_unknown_category_raises(call):
    with pytest.raises(ValueError, match="C99"):
        call("C99.1")


def test_title_and_category_of_non_codes_raise():
    with pytest.raises(ValueError, match="not an ICD-10-CM code"):
        icd10.title("C50.999")
    with pytest.raises(ValueError, match="does not look like"):
        icd10.category("photon")


def test_billable_codes_are_sorted_dotted_and_billable():
    codes = icd10.billable_codes()
    assert codes == sorted(codes)
    assert len(codes) == len(set(codes))
    assert len(codes) > 70_000
    assert {"C61", "C50.412", "S72.001A"} <= set(codes)
    assert "C50" not in codes and "S72.001" not in codes
    assert all(icd10.to_dotted(code) == code for code in codes[::500])
    assert all(icd10.is_billable(code) for code in codes[::500])


def test_billable_codes_by_prefix():
    assert icd10.billable_codes(prefixes=["C50.41"]) == ["C50.411", "C50.412", "C50.419"]
    neoplasms = icd10.billable_codes(prefixes=["2"])
    # Measured on simple-icd-10-cm 1.5.0 (April 2026 tables).
    assert len(neoplasms) == 1727
    assert all(code[0] in "CD" for code in neoplasms)
    assert icd10.billable_codes(prefixes=["C"]) == [c for c in neoplasms if c.startswith("C")]
    assert icd10.billable_codes(prefixes=["c61", "C50.41"]) == [
        "C50.411",
        "C50.412",
        "C50.419",
        "C61",
    ]
    assert icd10.billable_codes(prefixes=["C50-C50"]) == icd10.billable_codes(prefixes=["C50"])
    assert icd10.billable_codes(prefixes="C61") == ["C61"]  # one prefix given as a string
    # Overlapping prefixes do not repeat codes.
    assert icd10.billable_codes(prefixes=["C50", "C50.4"]) == icd10.billable_codes(prefixes=["C50"])


@pytest.mark.parametrize("prefix", ["99", "Q99.99", "C99", "X00-X01", ""])
def test_billable_codes_rejects_prefixes_that_select_nothing(prefix):
    with pytest.raises(ValueError, match="ICD-10-CM"):
        icd10.billable_codes(prefixes=[prefix])


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("C50.412", ["C50.412"]),
        ("c50412", ["C50.412"]),
        ("ICD: C61", ["C61"]),
        ("ICD-10: C61.", ["C61"]),
        ("The code is C34.11 (malignant neoplasm of upper lobe).", ["C34.11"]),
        ("C34.1/C34.2 or c34.11", ["C34.1", "C34.2", "C34.11"]),
        ("C61, C61 and c61", ["C61"]),
        ("Dx C50.999", ["C50.999"]),  # a made-up subcode is extracted, scored wrong later
        ("C4A.30", ["C4A.30"]),
        # Clinical shorthand that looks code-like is not a code.
        ("cT2N1M0, T2N1M0, HER2-, GS 4+3=7 (GG3), KPS 80, ECOG 1, PSA 12.4", []),
        ("pT1cN0(sn) ER+/PR+", []),
        # Dose-volume metrics are not codes, though V10 and V20 are categories.
        ("C34.11; lung V20Gy < 35%, V107% < 2%", ["C34.11"]),
        ("T38.3X1A", ["T38.3X1A"]),  # letters after digits stay part of a code
        ("C50.4121234", []),  # too long to be a code
        ("photon", []),
        ("", []),
    ],
)
def test_find_codes(text, codes):
    assert icd10.find_codes(text) == codes


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        # ICD-O morphology: M81.40 is an ICD-10-CM code, M8140/3 is not one.
        ("M8140/3", []),
        ("8140/3", []),
        ("C61 M8140/3", ["C61"]),
        ("C61 (ICD-O-3 M8140/3)", ["C61"]),
        ("C50.911, m8500/3", ["C50.911"]),
        # Labelled ICD-9, before or after the code; V58.0 is also an ICD-10-CM subcategory.
        ("ICD-9: 185", []),
        ("ICD9-CM 174.9", []),
        ("185 (ICD-9)", []),
        ("ICD-9-CM: V58.0", []),
        ("V58.0 [ICD9]", []),
        ("ICD-9 codes: 174.9, 185", []),
        ("ICD-10: C61 / ICD-9: 185", ["C61"]),
        ("C50.911 (ICD-10) / 174.9 (ICD-9)", ["C50.911"]),
        ("C61 (ICD-9 185)", ["C61"]),
        # Labelled ICD-O topography (always four characters).
        ("ICD-O-3: C61.9", []),
        ("C32.0 (ICD-O-3)", []),
        ("ICD-O-3 topography C50.9", []),
        ("ICD-O-3: C61", ["C61"]),
    ],
)
def test_find_codes_skips_other_code_systems(text, codes):
    assert icd10.find_codes(text) == codes


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("C50. 911", ["C50.911"]),
        ("C50 .911", ["C50.911"]),
        ("C50 . 911", ["C50.911"]),
        ("Dx C50.\u00a0911 left", ["C50.911"]),
        ("C50,911", ["C50.911"]),  # decimal comma
        ("C50-911", ["C50.911"]),
        ("T38. 0X5A", ["T38.0X5A"]),
        # The joined code does not exist: neither it nor its category is read.
        ("C50. 999", []),
        ("C61. 2 lesions", []),
        ("C61,185", []),
        ("C50. 911.5", []),
        # Not a split subcode: a sentence's full stop, a list, a range, a spaced hyphen.
        ("Dx C61. The PSA was 12.", ["C61"]),
        ("C61,C50.911", ["C61", "C50.911"]),
        ("C00-C14", ["C00", "C14"]),
        ("C61 - Malignant neoplasm of prostate", ["C61"]),
        ("C61 - 2019", ["C61"]),
    ],
)
def test_find_codes_never_reads_a_split_subcode_as_its_category(text, codes):
    assert icd10.find_codes(text) == codes


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("\uff23\uff16\uff11", ["C61"]),  # full-width
        ("\uff23\uff15\uff10\uff0e\uff19\uff11\uff11", ["C50.911"]),
        ("C5\u200b0.911", ["C50.911"]),  # zero-width space
        ("\u00a0C61\u00a0", ["C61"]),
        # A letter for a digit is not corrected: unreadable, or a made-up subcode.
        ("C5O.911", []),
        ("C50.9l", ["C50.9L"]),
        # Placeholder letters: a code's own 'X' reads, an "any subcode" x does not correct.
        ("T38.0X5A", ["T38.0X5A"]),
        ("t380x5a", ["T38.0X5A"]),
        ("Dx C61xx", []),
        ("D05.1x", ["D05.1X"]),
        # Staging and dose-volume constraints shaped like categories (M1A, D50, V30).
        ("cT2 N1 M1a", []),
        ("M1A.00", ["M1A.00"]),
        ("PTV V30 < 30%, D50 <= 20 Gy, V20 Gy", []),
        ("D50.9", ["D50.9"]),
    ],
)
def test_find_codes_on_written_variants(text, codes):
    assert icd10.find_codes(text) == codes


def _curate_recorded(recorded: str) -> str:
    from radonc_llm.data.cohort import Excluded, PatientRecord, require_billable_icd10
    from radonc_llm.data.ingest import RawRow

    record = PatientRecord(
        patient_id="p",
        diagnoses=[RawRow(row=1, values={"icd10": recorded})],
        files={"diagnoses": "diagnoses.csv"},
    )
    try:
        require_billable_icd10(record)
    except Excluded as excluded:
        return excluded.reason
    return record.icd10


@pytest.mark.parametrize(
    ("recorded", "outcome"),
    [
        ("C61", "C61"),
        ("c61", "C61"),
        ("C61.", "C61"),
        ("C61 - Malignant neoplasm of prostate", "C61"),
        ("Malignant neoplasm of prostate (C61)", "C61"),
        ("ICD-10: C61", "C61"),
        ("ICD10-CM C50.911", "C50.911"),
        ("C50.911 / 174.9", "C50.911"),  # 174.9 is no ICD-10 code
        ("C50.911 (ICD-10) / 174.9 (ICD-9)", "C50.911"),
        ("C61 M8140/3", "C61"),
        ("C7931", "C79.31"),
        ("C79.31 mets", "C79.31"),
        ("C34.90 (R)", "C34.90"),  # recorded as unspecified side: kept as recorded
        ("T38.0X5A", "T38.0X5A"),
        ("C50. 911", "C50.911"),
        ("C50,911", "C50.911"),
        ("C50.911.", "C50.911"),  # a full stop
        ("\uff23\uff16\uff11", "C61"),
        ("C50.911;C50.912", "invalid_icd10"),  # two codes: ambiguous
        ("C50.9l", "invalid_icd10"),  # letters for digits are never corrected
        ("C5O.911", "invalid_icd10"),
        ("C50.91l", "invalid_icd10"),
        ("D05.1x", "invalid_icd10"),
        ("Dx C61xx", "invalid_icd10"),
        ("61.0", "invalid_icd10"),
        ("C61.9", "invalid_icd10"),  # ICD-10-WHO / ICD-O topography, not ICD-10-CM
        ("C509.11", "invalid_icd10"),
        ("M8140/3", "invalid_icd10"),
        ("ICD-9: 185", "invalid_icd10"),
        ("ICD-O-3: C61.9", "invalid_icd10"),
        ("C34.9", "nonbillable_icd10"),  # billable in ICD-10-WHO, a subcategory in CM
        ("C50", "nonbillable_icd10"),
    ],
)
def test_what_curation_makes_of_recorded_codes(recorded, outcome):
    assert _curate_recorded(recorded) == outcome


def test_case_model_uses_the_dotted_form():
    from radonc_llm.data.cases import Case

    case = Case(
        case_id="1",
        patient_id="p",
        diagnosis_text="x",
        regimen="70 Gy in 35 fractions",
        modality="photon",
        icd10="c50412",
    )
    assert case.icd10 == "C50.412"
