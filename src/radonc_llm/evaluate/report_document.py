"""The report as a document: numbered tables and figures, text blocks, number formatting,
and its two renderings, self-contained HTML (Jinja2, autoescaped) and Markdown.

Nothing here reads a run: `report.py` builds the sections from the run's files and hands
them over as `Section` objects holding `TableBlock`, `FigureBlock` and `TextBlock`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radonc_llm.errors import RadoncInputError
from radonc_llm.evaluate import figures
from radonc_llm.storage import atomic_open, write_text_atomic

# --- the report's building blocks -------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """A table cell: main text, an optional second line in small type."""

    text: str
    sub: str | None = None


@dataclass
class TableBlock:
    number: int
    key: str
    caption: str
    header: list[str]
    rows: list[list[Cell]]
    note: str | None = None
    groups: dict[int, str] = field(default_factory=dict)  # row index -> group heading before it
    align: list[str] = field(default_factory=list)  # "l" or "r" per column
    kind: str = "table"
    css: str = ""


@dataclass
class FigureBlock:
    number: int
    key: str
    caption: str
    png: bytes
    kind: str = "figure"

    @property
    def file_name(self) -> str:
        return f"fig{self.number:02d}-{self.key}.png"

    @property
    def display_width(self) -> int:
        """CSS pixels: drawn at figures.DPI, shown at 125 dpi, so sharp on high-density screens."""
        return round(int.from_bytes(self.png[16:20], "big") * 125 / figures.DPI)

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class TextBlock:
    text: str
    kind: str = "text"  # "text", "missing" (absent input) or "note" (a stage's own message)


@dataclass
class Section:
    key: str
    title: str
    blocks: list = field(default_factory=list)

    def text(self, text: str) -> None:
        self.blocks.append(TextBlock(text))

    def missing(self, text: str) -> None:
        self.blocks.append(TextBlock(text, kind="missing"))


class ReportBuilder:
    """Numbers tables and figures in the order they are made, which is document order."""

    def __init__(self) -> None:
        self.n_tables = 0
        self.n_figures = 0

    def table(
        self,
        key: str,
        caption: str,
        header: Sequence[str],
        rows: Iterable[Sequence[Cell | str]],
        *,
        note: str | None = None,
        groups: Mapping[int, str] | None = None,
        css: str = "",
        align: Sequence[str] | None = None,
    ) -> TableBlock:
        self.n_tables += 1
        cells = [[c if isinstance(c, Cell) else Cell(str(c)) for c in row] for row in rows]
        return TableBlock(
            number=self.n_tables,
            key=key,
            caption=caption,
            header=list(header),
            rows=cells,
            note=note,
            groups=dict(groups or {}),
            css=css,
            align=list(align) if align is not None else _alignment(header, cells),
        )

    def figure(self, key: str, caption: str, png: bytes) -> FigureBlock:
        self.n_figures += 1
        return FigureBlock(number=self.n_figures, key=key, caption=caption, png=png)


# What a right-aligned (numeric) cell looks like: "78.1% (74.0–82.0)", "<0.001", "1,204",
# "+0.81", "12.4 s", "10 min 12 s". Placeholders do not decide a column's alignment.
_NUMERIC_CELL = re.compile(r"[<>+\-−]?\d[\d,.]*(%| s| min \d+ s| h \d+ min)?( \([^)]*\))?")
_NEUTRAL_CELLS = {"", "—", "reference"}


def _alignment(header: Sequence[str], rows: Sequence[Sequence[Cell]]) -> list[str]:
    align = []
    for column in range(len(header)):
        texts = [row[column].text for row in rows if column < len(row)]
        texts = [t for t in texts if t.strip() not in _NEUTRAL_CELLS]
        numeric = texts and all(_NUMERIC_CELL.fullmatch(t.strip()) for t in texts)
        align.append("r" if column > 0 and numeric else "l")
    return align


# --- formatting -------------------------------------------------------------------------

DASH = "—"


def as_number(value: Any) -> float | None:
    """A finite number, else None: NaN or infinity (JSON's NaN/Infinity tokens, a loss that
    diverged) is no value a table can show."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_share(value: Any, ci: Sequence[float] | None = None) -> str:
    """0.7812 -> "78.1%", with a 95% CI "78.1% (74.0–82.0)"."""
    number = as_number(value)
    if number is None:
        return DASH
    text = f"{100 * number:.1f}%"
    return f"{text} ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})" if ci else text


def fmt_score(value: Any, ci: Sequence[float] | None = None, *, digits: int = 3) -> str:
    number = as_number(value)
    if number is None:
        return DASH
    text = f"{number:.{digits}f}"
    return f"{text} ({ci[0]:.{digits}f}–{ci[1]:.{digits}f})" if ci else text


def fmt_p(value: Any) -> str:
    number = as_number(value)
    if number is None:
        return DASH
    if number < 0.001:
        return "<0.001"
    # Below 0.1, three significant digits: 0.0496 must not read as "0.050", beside a 0.05 line.
    return f"{number:.3g}" if number < 0.1 else f"{number:.3f}"


def fmt_count(value: Any) -> str:
    number = as_number(value)
    return f"{int(number):,}" if number is not None else DASH


def ci_of(value: Any) -> tuple[float, float] | None:
    """A stored 95% CI, [low, high], as numbers (None when absent or not a pair)."""
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low, high = as_number(value[0]), as_number(value[1])
        if low is not None and high is not None:
            return low, high
    return None


def metric_with_ci(
    block: Mapping | None, *names: str
) -> tuple[float | None, tuple[float, float] | None]:
    """The first of `names` in a task block of metrics.json, with its bootstrap 95% CI.

    Intervals are kept under `ci95: {metric: [low, high]}`; aliases (icd10 `exact_accuracy`
    and `accuracy`) share one interval, stored under either name.
    """
    if not block:
        return None, None
    intervals = block.get("ci95") or {}
    for name in names:
        if name in block:
            ci = next((ci_of(intervals.get(a)) for a in (name, *names) if intervals.get(a)), None)
            return as_number(block[name]), ci
    return None, None


def sentence_case(text: str) -> str:
    text = str(text).replace("_", " ")
    return text[:1].upper() + text[1:]


# --- generic renderers for JSON whose shape this module does not own ------------------------


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return DASH if math.isnan(value) else f"{value:.4g}"
    if value is None:
        return DASH
    ci = ci_of(value)
    if ci and isinstance(value, list):
        return f"({ci[0]:.3g}–{ci[1]:.3g})"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def flatten_rows(
    obj: Mapping, *, skip: Iterable[str] = (), prefix: str = "", limit: int = 120
) -> list[list[str]]:
    """Nested JSON as (dotted key, value) rows; short lists of scalars stay on one row."""
    rows: list[list[str]] = []
    for key, value in obj.items():
        if key in skip:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flatten_rows(value, prefix=f"{name}.", limit=limit - len(rows)))
        else:
            rows.append([name, _scalar_text(value)])
        if len(rows) >= limit:
            rows = rows[:limit] + [["…", "(more entries in the JSON file)"]]
            break
    return rows


def generic_tables(obj: Mapping) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """One table per top-level entry: records (dict of dicts, list of dicts) become rows."""
    tables = []
    scalars = []
    for key, value in obj.items():
        caption = str(key).replace("_", " ")
        records: list[tuple[str, Mapping]] = []
        if (
            isinstance(value, Mapping)
            and value
            and all(isinstance(v, Mapping) for v in value.values())
        ):
            records = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            records = [("", v) for v in value]
        if records:
            columns = list(dict.fromkeys(c for _, r in records for c in r))
            label = [] if all(not name for name, _ in records) else [caption]
            rows = [
                ([name] if label else []) + [_scalar_text(r.get(c)) for c in columns]
                for name, r in records
            ]
            tables.append((str(key), caption, [sentence_case(h) for h in label + columns], rows))
        elif isinstance(value, Mapping):
            tables.append((str(key), caption, ["Entry", "Value"], flatten_rows(value)))
        else:
            scalars.append([caption, _scalar_text(value)])
    if scalars:
        tables.insert(0, ("summary", "summary", ["Entry", "Value"], scalars))
    return tables


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


@dataclass
class Report:
    title: str
    run_name: str
    subtitle: str
    sections: list[Section]

    @property
    def figures(self) -> list[FigureBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, FigureBlock)]

    @property
    def tables(self) -> list[TableBlock]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, TableBlock)]


def render_html(report: Report) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    templates = Path(__file__).parent / "templates"
    env = Environment(
        loader=FileSystemLoader(templates),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    css = (templates / "report.css").read_text(encoding="utf-8")
    return env.get_template("report.html").render(report=report, css=css)


def _md_cell(cell: Cell) -> str:
    text = _md_text(cell.text) + (f" — *{_md_text(cell.sub)}*" if cell.sub else "")
    return " ".join(text.replace("|", "\\|").split()) or " "


def _md_text(text: str) -> str:
    # Text from data must not become raw HTML when the Markdown is rendered: a tag or entity
    # needs "<" before a letter, "/", "!" or "?", or an "&"; "<0.001" stays readable.
    return re.sub(r"<(?=[A-Za-z/!?])", "&lt;", text.replace("&", "&amp;"))


def render_markdown(report: Report, *, figure_dir: str = "figures") -> str:
    lines = [f"# {report.title}", "", f"*{_md_text(report.subtitle)}*", ""]
    for index, section in enumerate(report.sections, start=1):
        lines += [f"## {index}. {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, TextBlock):
                quote = "> " if block.kind in ("missing", "note") else ""
                lines += [quote + _md_text(block.text), ""]
            elif isinstance(block, FigureBlock):
                lines += [
                    f"![Figure {block.number}]({figure_dir}/{block.file_name})",
                    "",
                    f"**Figure {block.number}.** {_md_text(block.caption)}",
                    "",
                ]
            elif isinstance(block, TableBlock):
                lines += [f"**Table {block.number}.** {_md_text(block.caption)}", ""]
                lines.append("| " + " | ".join(_md_cell(Cell(h)) for h in block.header) + " |")
                lines.append(
                    "|" + "|".join("---:" if a == "r" else ":---" for a in block.align) + "|"
                )
                for row_index, row in enumerate(block.rows):
                    if row_index in block.groups:
                        group = [f"**{_md_cell(Cell(block.groups[row_index]))}**"]
                        lines.append(
                            "| " + " | ".join(group + [" "] * (len(block.header) - 1)) + " |"
                        )
                    lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
                lines.append("")
                if block.note:
                    lines += [f"*{_md_text(block.note)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report_files(report: Report, out: Path) -> tuple[Path, Path]:
    """Write `out/report.html` (self-contained), `out/report.md` and the figures it points to
    (`out/figures/`, stale ones removed); returns the HTML and Markdown paths."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RadoncInputError("is a file; the report's --out names a folder", file=out)
    try:
        return _write_report_files(report, out)
    except OSError as exc:
        raise RadoncInputError(
            f"cannot write the report ({exc.strerror or exc})", file=exc.filename or out
        ) from None


def _write_report_files(report: Report, out: Path) -> tuple[Path, Path]:
    figure_dir = out / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    written = set()
    for figure in report.figures:
        with atomic_open(figure_dir / figure.file_name, "wb") as handle:
            handle.write(figure.png)
        written.add(figure.file_name)
    for stale in figure_dir.glob("fig*.png"):
        if stale.name not in written:
            stale.unlink()
    html_path, md_path = out / "report.html", out / "report.md"
    write_text_atomic(html_path, render_html(report))
    write_text_atomic(md_path, render_markdown(report))
    return html_path, md_path
