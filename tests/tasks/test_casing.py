"""A note typed in capitals, or with none, is read in the case clinical notes are written in."""

from __future__ import annotations

from random import Random

import pytest

from radonc_llm.data.synth import _draw_patient, write_note
from radonc_llm.tasks.casing import is_lower_case, is_shouting, normal_case
from radonc_llm.tasks.prompts import note_text


@pytest.mark.parametrize(
    "shouted,written",
    [
        (
            "HISTORY: 66 YO FEMALE WITH STAGE I (T1AN0) NSCLC, LEFT LOWER LOBE, 1.6 CM, "
            "MEDICALLY INOPERABLE (SEVERE COPD). PLAN: SBRT.",
            "History: 66 yo female with stage I (T1aN0) NSCLC, left lower lobe, 1.6 cm, "
            "medically inoperable (severe COPD). Plan: SBRT.",
        ),
        (
            "81 Y/O F W/ IDC, RT BREAST, UPPER-OUTER QUADRANT, S/P LUMPECTOMY + SLNB, "
            "PT1BN0(SN), G2, ER+/PR+/HER2-, POST-OP RT",
            "81 y/o F w/ IDC, RT breast, upper-outer quadrant, s/p lumpectomy + SLNB, "
            "pT1bN0(sn), G2, ER+/PR+/HER2-, post-op RT",
        ),
        (
            "WE SAW A 75-YEAR-OLD MAN WITH NON-SMALL CELL LUNG CANCER. CT1CN0M0, PD-L1 TPS 80%. "
            "P16+ SCC OF THE BASE OF TONGUE, YPT2N1A, CN0M0, FIGO IIIC2, 2NDARY, R-CHOP X6.",
            "We saw a 75-year-old man with non-small cell lung cancer. cT1cN0M0, PD-L1 TPS 80%. "
            "p16+ SCC of the base of tongue, ypT2N1a, cN0M0, FIGO IIIC2, 2ndary, R-CHOP x6.",
        ),
        (
            "GBM, IDH WILD-TYPE, MGMT UNMETHYLATED, S/P GTR.\nKPS 90. TX: STUPP.",
            "GBM, IDH wild-type, MGMT unmethylated, s/p GTR.\nKPS 90. Tx: stupp.",
        ),
    ],
)
def test_a_note_in_capitals_is_written_as_clinicians_write(shouted, written):
    assert is_shouting(shouted)
    assert normal_case(shouted) == written
    assert note_text(shouted) == written
    # The same note typed without capitals reads the same.
    assert is_lower_case(shouted.lower())
    assert note_text(shouted.lower()) == written


@pytest.mark.parametrize(
    "note",
    [
        "68M, prostate adenocarcinoma GS 4+3=7 (GG3), PSA 14.2, cT2b N0 M0 on MRI.",
        "DISCHARGE SUMMARY\nPrincipal diagnosis: bone metastasis - L3 (MRI confirmed).",
        "PSA 7.8, GS 3+4",  # too short to tell shouting from acronyms
        "ER+/PR+/HER2- IDC, SLNB NEG, ALND, MDT: WBI",  # mostly acronyms already
    ],
)
def test_a_note_not_in_capitals_is_unchanged(note):
    if not is_shouting(note):
        assert normal_case(note) == note
    else:  # acronyms only: nothing to lower
        assert normal_case(note) == note.replace("NEG", "neg")


@pytest.mark.parametrize("retyped", [str.upper, str.lower])
def test_synthetic_notes_retyped_come_back_nearly_as_written(retyped):
    # Names, sentence starts and words a note wrote in capitals for emphasis cannot be
    # recovered; everything else should be.
    rng = Random(7)
    same = total = 0
    for _ in range(300):
        note = write_note(_draw_patient(rng), rng, typo_rate=0.0)
        if is_shouting(note) or is_lower_case(note):
            continue
        restored = normal_case(retyped(note))
        assert len(restored.split()) == len(note.split())  # no word lost or split
        pairs = list(zip(note.split(), restored.split(), strict=True))
        same += sum(a == b for a, b in pairs)
        total += len(pairs)
    assert same / total > 0.9
