from __future__ import annotations

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from radonc_llm.cli import _check_words, app, user_errors
from radonc_llm.errors import RadoncInputError


def _app(error: BaseException) -> typer.Typer:
    failing = typer.Typer()

    @failing.command()
    @user_errors
    def fail() -> None:
        raise error

    return failing


def test_bad_input_is_one_message_and_status_2():
    result = CliRunner().invoke(_app(RadoncInputError("not a number", file="a.csv", row=3)))
    assert result.exit_code == 2
    assert "error:" in result.output and "a.csv" in result.output and "row 3" in result.output
    assert "Traceback" not in result.output


def test_ctrl_c_says_how_to_carry_on_not_a_traceback():
    result = CliRunner().invoke(_app(KeyboardInterrupt()))
    assert result.exit_code == 130
    assert "interrupted" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output


def test_brackets_in_a_message_are_printed_not_read_as_markup():
    result = CliRunner().invoke(_app(RadoncInputError("got [nan, 0, 1]", file="data[v2]/x.csv")))
    assert result.exit_code == 2
    assert "data[v2]/x.csv" in result.output and "got [nan, 0, 1]" in result.output


def test_a_file_error_is_one_line_naming_the_file():
    error = OSError(28, "No space left on device", "/data/out/cases.jsonl")
    result = CliRunner().invoke(_app(error))
    assert result.exit_code == 2
    assert "/data/out/cases.jsonl: No space left on device" in result.output
    assert "Traceback" not in result.output


def test_an_error_not_about_a_file_is_not_hidden():
    result = CliRunner().invoke(_app(OSError("socket closed")))
    assert result.exit_code == 1 and isinstance(result.exception, OSError)


def test_the_packages_own_warnings_print_as_one_line(capsys):
    import warnings

    from radonc_llm import cli

    cli._show_warning(UserWarning("3 rows skipped"), UserWarning, cli.__file__, 10)
    assert "warning: 3 rows skipped" in capsys.readouterr().err  # beside errors, not in tables
    with warnings.catch_warnings():
        cli._show_warning(UserWarning("other"), UserWarning, "/elsewhere/lib.py", 7)
    assert "/elsewhere/lib.py:7: UserWarning: other" in capsys.readouterr().err


def test_an_output_folder_that_is_a_file_is_named_before_any_work(tmp_path):
    from radonc_llm.cli import app

    blocking = tmp_path / "out"
    blocking.write_text("keep me")
    for args in (["synth", "--patients", "5"], ["curate", "--raw", str(tmp_path / "raw")]):
        result = CliRunner().invoke(app, [*args, "--out", str(blocking)])
        assert result.exit_code == 2, result.output
        assert "is a file, not a folder" in result.output
    assert blocking.read_text() == "keep me" and not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["split", "--cases", "a.jsonl", "--cases", "b.jsonl", "--out", "s"],
        ["split", "--cases=a.jsonl", "--out", "s", "--seed", "1", "--seed=2"],
        ["review", "export", "--study", "x", "--study", "y", "--out", "o"],
    ],
)
def test_an_option_of_one_value_given_twice_is_refused_not_dropped(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "given 2 times, but it takes one value" in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()


def test_options_that_take_several_values_may_repeat():
    predict = typer.main.get_command(app).commands["predict"]
    _check_words(predict, ["--tasks", "modality", "--tasks", "icd10", "--cases", "c"])
    # A value that looks like an option is the option's value, not a second use of it.
    _check_words(predict, ["--model", "--cases", "--cases", "c.jsonl"])


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(17, "File exists", "{tmp}/afile"), "afile: is a file, not a folder"),
        (OSError(20, "Not a directory", "{tmp}/afile/x"), "is a file, not a folder"),
        (OSError(13, "Permission denied", "/srv/out"), "/srv/out: Permission denied; choose a"),
        (OSError(30, "Read-only file system", "/mnt/ro"), "write the output elsewhere"),
    ],
)
def test_a_file_error_says_what_to_do(error, expected, tmp_path):
    (tmp_path / "afile").write_text("x")
    error.filename = error.filename.format(tmp=tmp_path)
    result = CliRunner().invoke(_app(error))
    assert result.exit_code == 2
    assert expected in " ".join(result.output.split())
    assert "File exists" not in result.output


def test_a_folder_that_exists_is_not_called_a_file(tmp_path):
    result = CliRunner().invoke(_app(OSError(17, "File exists", str(tmp_path))))
    assert f"{tmp_path}: already exists" in result.output


def test_a_warning_with_brackets_is_printed_not_read_as_markup(capsys):
    from radonc_llm import cli

    cli._print_warning("3 case(s) have no answer: ['c1', 'c2'] [bold]")
    assert "['c1', 'c2'] [bold]" in capsys.readouterr().err
