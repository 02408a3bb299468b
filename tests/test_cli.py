from __future__ import annotations

import typer
from typer.testing import CliRunner

from radonc_llm.cli import user_errors
from radonc_llm.errors import RadoncInputError


def _app(error: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @user_errors
    def fail() -> None:
        raise error

    return app


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
