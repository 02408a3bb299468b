"""A small hand-made raw export with one patient per kind of problem, in CSV/JSONL/Parquet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

PATIENT_COLUMNS = ["patient_id", "birth_year", "sex"]
DIAGNOSIS_COLUMNS = ["patient_id", "diagnosis_id", "diagnosis_date", "icd10", "diagnosis_text"]
COURSE_COLUMNS = [
    "patient_id", "course_id", "plan_id", "status", "intent", "primary_flag", "modality",
    "dose", "dose_unit", "fractions", "technique", "target", "concurrent", "start_date",
]  # fmt: skip
BROKEN = "@@BROKEN@@"  # replaced by bytes that are not UTF-8 in CSV files

NOTE = "67M w/ cT2N1M0 SCC R tonsil, p16+, ECOG 1, plan definitive CRT"


def _course(pid, plan, *, status="approved", intent="curative", primary="Y", modality="6X",
            dose="70", unit="Gy", fractions="35", technique="IMRT", concurrent="weekly cisplatin",
            course=None, start="2023-02-01"):  # fmt: skip
    return {
        "patient_id": pid, "course_id": course or f"C-{plan}", "plan_id": plan, "status": status,
        "intent": intent, "primary_flag": primary, "modality": modality, "dose": dose,
        "dose_unit": unit, "fractions": fractions, "technique": technique, "target": "PTV",
        "concurrent": concurrent, "start_date": start,
    }  # fmt: skip


def _diagnosis(pid, did, code="C09.9", *, date="2023-01-10", text=NOTE):
    return {"patient_id": pid, "diagnosis_id": did, "diagnosis_date": date, "icd10": code,
            "diagnosis_text": text}  # fmt: skip


# patient id -> the reason it must be excluded for, or None when it must be kept
EXPECTED = {
    "P01": None,  # clean, plus a draft plan that is ignored
    "P02": "multiple_diagnoses",
    "P03": "invalid_icd10",
    "P04": "nonbillable_icd10",
    "P05": "ambiguous_primary",  # two plans flagged primary
    "P06": "unmappable_modality",
    "P07": None,  # cGy -> Gy
    "P08": "implausible_prescription",  # 7000 Gy: a cGy value typed as Gy
    "P09": "incomplete_record",  # bad date on a course row
    "P10": "incomplete_record",  # fractions "thirty"
    "P11": "incomplete_record",  # unknown status
    "P12": None,  # exact duplicate row of its plan
    "P13": "incomplete_record",  # conflicting duplicate diagnosis_id -> no readable diagnosis
    "P14": "incomplete_record",  # broken encoding in the note
    "P15": "no_active_plan",  # only a cancelled course
    "P16": None,  # dotless lower-case code
    "P17": None,  # no flag, a single curative course, plus a retired plan
    "P18": "ambiguous_primary",  # no flag, two curative courses
    "P19": "no_patient_record",  # rows in diagnoses and courses only
    "P20": "no_diagnosis",
    "P21": "no_primary_plan",  # one palliative course, not flagged
    "P22": "incomplete_record",  # only a course row cut short (CSV only)
}


def messy_tables() -> dict[str, list[dict]]:
    patients = [
        {"patient_id": f"P{i:02d}", "birth_year": "1956", "sex": "M"}
        for i in range(1, 22)
        if i != 19
    ]
    diagnoses = [
        _diagnosis("P01", "D01"),
        _diagnosis("P02", "D02a"), _diagnosis("P02", "D02b", "C32.0"),
        _diagnosis("P03", "D03", "C99.9"),
        _diagnosis("P04", "D04", "C50"),
        _diagnosis("P05", "D05"), _diagnosis("P06", "D06"), _diagnosis("P07", "D07"),
        _diagnosis("P08", "D08"), _diagnosis("P09", "D09"), _diagnosis("P10", "D10"),
        _diagnosis("P11", "D11"), _diagnosis("P12", "D12"),
        _diagnosis("P13", "D13"), _diagnosis("P13", "D13", "C32.0"),
        _diagnosis("P14", "D14", text=f"67M tonsil {BROKEN} SCC"),
        _diagnosis("P15", "D15"), _diagnosis("P16", "D16", "c61"), _diagnosis("P17", "D17"),
        _diagnosis("P18", "D18"), _diagnosis("P19", "D19"), _diagnosis("P21", "D21", "C79.51"),
    ]  # fmt: skip
    courses = [
        _course("P01", "L01"), _course("P01", "L01d", status="draft", dose="66", fractions="33"),
        _course("P02", "L02"), _course("P03", "L03"), _course("P04", "L04"),
        _course("P05", "L05a"), _course("P05", "L05b", dose="66", fractions="33"),
        _course("P06", "L06", modality="hyperthermia"),
        _course("P07", "L07", dose="7000", unit="cGy"),
        _course("P08", "L08", dose="7000", unit="Gy"),
        _course("P09", "L09", start="2021-13-45"),
        _course("P10", "L10", fractions="thirty"),
        _course("P11", "L11", status="pending?"),
        _course("P12", "L12"), _course("P12", "L12"),
        _course("P13", "L13"), _course("P14", "L14"),
        _course("P15", "L15", status="cancelled"),
        _course("P16", "L16", dose="60", fractions="20", concurrent="", technique="VMAT"),
        _course("P17", "L17", primary="N"),
        _course("P17", "L17r", primary="N", status="retired", course="C-L17"),
        _course("P18", "L18a", primary="N"), _course("P18", "L18b", primary="N", intent="definitive"),
        _course("P19", "L19"), _course("P20", "L20"),
        _course("P21", "L21", primary="N", intent="palliative", dose="8", fractions="1",
                technique="3D-CRT", concurrent=""),
    ]  # fmt: skip
    return {"patients": patients, "diagnoses": diagnoses, "treatment_courses": courses}


COLUMNS = {
    "patients": PATIENT_COLUMNS,
    "diagnoses": DIAGNOSIS_COLUMNS,
    "treatment_courses": COURSE_COLUMNS,
}


def write_messy_export(
    out_dir: Path, *, fmt: str = "csv", drop_column: tuple[str, str] | None = None
) -> Path:
    """Write the export; `drop_column=(table, column)` leaves one required column out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in messy_tables().items():
        columns = [c for c in COLUMNS[name] if drop_column != (name, c)]
        rows = [{c: row[c] for c in columns} for row in rows]
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            data = buffer.getvalue().encode("utf-8").replace(BROKEN.encode(), b"\xff\xfe caf\xe9")
            if name == "treatment_courses":
                data += b"P22,C-L22,L22,approved\n"  # a row cut short
            (out_dir / f"{name}.csv").write_bytes(data)
        elif fmt == "jsonl":
            # Text that went through a lossy conversion carries U+FFFD where bytes were lost.
            lines = [json.dumps(row).replace(BROKEN, "\\ufffd") for row in rows]
            (out_dir / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            for row in rows:
                for key, value in row.items():
                    row[key] = value.replace(BROKEN, "\ufffd")
            table = pa.Table.from_pylist(rows)
            pq.write_table(table, out_dir / f"{name}.parquet")
        else:
            raise ValueError(fmt)
    return out_dir
