"""How single values of a raw export are read: dates, birth years, sex, numbers."""

import datetime as dt

import pytest

from radonc_llm.data.ingest import BadValue, _birth_year, _date, _number, _sex


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-01",
        "2023-02-01 00:00:00",
        "2023-02-01T08:30:00Z",
        "20230201",
        "2023/02/01",
        "2023.02.01",
        "01-Feb-2023",
        "01-FEB-2023 12:00:00 AM",
        "1 Feb 2023",
        "Feb 1, 2023",
        "1 February 2023",
    ],
)
def test_dates_that_read_one_way_only_are_read(text):
    assert _date(text) == dt.date(2023, 2, 1)


@pytest.mark.parametrize("text", ["03/04/2021", "2/1/2023 12:00:00 AM", "31/12/2023", "31.12.2023"])
def test_day_month_order_is_never_guessed(text):
    with pytest.raises(BadValue, match="day/month or month/day") as error:
        _date(text)
    assert error.value.reason == "bad_date"


@pytest.mark.parametrize("text", ["2021-13-45", "0000-00-00", "yesterday", ""])
def test_what_is_not_a_date_says_so(text):
    with pytest.raises(BadValue, match="is not a date") as error:
        _date(text)
    assert error.value.reason == "bad_date"


def test_a_birth_date_gives_its_year_and_a_year_stays_a_year():
    assert _birth_year("1956-04-02") == 1956
    assert _birth_year("1956") == _birth_year("1956.0") == 1956
    with pytest.raises(BadValue, match="out of range"):
        _birth_year("1789")


@pytest.mark.parametrize(
    "text,sex", [("Male", "M"), ("f", "F"), ("Other", "X"), ("not recorded", "U"), ("UNK", "U")]
)
def test_sex_codes(text, sex):
    assert _sex(text) == sex


@pytest.mark.parametrize(
    "text,value", [("50,4", 50.4), ("4,500", 4500.0), ("1,800.5", 1800.5), (" 70 ", 70.0)]
)
def test_numbers_with_decimal_commas_or_thousands_separators(text, value):
    assert _number(text) == value


def test_a_list_of_numbers_is_not_a_number():
    with pytest.raises(BadValue, match="not a number"):
        _number("12,5,3")
