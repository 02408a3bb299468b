"""Atomic writes and JSONL reading."""

from __future__ import annotations

import json

import pytest

from radonc_llm.errors import RadoncInputError
from radonc_llm.storage import (
    atomic_open,
    iter_jsonl,
    read_jsonl,
    remove_leftover_temporaries,
    write_json_atomic,
    write_jsonl_atomic,
)


def test_failed_write_leaves_the_old_file_untouched(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl_atomic(path, [{"x": 1}])
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert read_jsonl(path) == [{"x": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["a.jsonl"]


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(RadoncInputError, match=r"b.jsonl, row 2"):
        read_jsonl(path)


def test_a_byte_order_mark_starts_only_the_first_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\xef\xbb\xbf{"a": 2}\n')
    assert next(iter_jsonl(path)) == (1, {"a": 1})
    with pytest.raises(RadoncInputError, match="row 2"):
        read_jsonl(path)  # a mark inside the file is damage, not an encoding hint


def test_a_folder_where_a_file_goes_is_named_not_the_temporary_file(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(RadoncInputError, match="is a folder") as error:
        write_json_atomic(tmp_path / "out", {"a": 1})
    assert error.value.file == str(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [] and list(tmp_path.iterdir()) == [
        tmp_path / "out"
    ]


def test_leftover_temporaries_of_killed_writes_are_removed_and_nothing_else(tmp_path):
    import os
    import tempfile

    (tmp_path / "train").mkdir()
    fd, left = tempfile.mkstemp(dir=tmp_path / "train", prefix=".adapter.bin.", suffix=".tmp")
    os.close(fd)
    kept = [tmp_path / "notes.tmp", tmp_path / ".stage-train.json", tmp_path / ".x.tmp"]
    for path in kept:
        path.write_text("mine")
    assert remove_leftover_temporaries(tmp_path) == 1
    assert not os.path.exists(left) and all(path.exists() for path in kept)


def test_a_file_under_a_file_is_named_not_file_exists(tmp_path):
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(RadoncInputError, match="is a file, not a folder") as error:
        write_json_atomic(tmp_path / "afile" / "x.json", {"a": 1})
    assert error.value.file == str(tmp_path / "afile")
    assert (tmp_path / "afile").read_text() == "keep"


def test_an_output_file_is_checked_before_the_work(tmp_path):
    from radonc_llm.storage import check_output_file

    (tmp_path / "afile").write_text("keep")
    (tmp_path / "adir").mkdir()
    with pytest.raises(RadoncInputError, match=r"is a folder; give a prediction file \(.jsonl\)"):
        check_output_file(tmp_path / "adir", expected="a prediction file (.jsonl)")
    with pytest.raises(RadoncInputError, match="is a file, not a folder") as error:
        check_output_file(tmp_path / "afile" / "deeper" / "p.jsonl")
    assert error.value.file == str(tmp_path / "afile")
    check_output_file(tmp_path / "new" / "p.jsonl")  # a folder still to be made is fine
    assert not (tmp_path / "new").exists()


def test_an_output_that_cannot_be_written_is_named_before_the_work(tmp_path, monkeypatch):
    import os

    from radonc_llm.storage import check_output_file, check_output_folder

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # Running as root, chmod does not stop a write: the permission answer is what is faked.
    monkeypatch.setattr(os, "access", lambda path, mode: path != locked and real_access(path, mode))
    with pytest.raises(RadoncInputError, match="not writable by you") as error:
        check_output_folder(locked / "out")
    assert error.value.file == str(locked)
    with pytest.raises(RadoncInputError, match="not writable by you"):
        check_output_file(locked / "p.jsonl")
    check_output_folder(tmp_path / "elsewhere")


def test_a_gzip_compressed_jsonl_file_is_read_and_a_cut_one_named(tmp_path):
    import gzip

    from radonc_llm.storage import iter_jsonl

    rows = [{"case_id": f"c{i}"} for i in range(3)]
    packed = gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode())
    path = tmp_path / "cases.jsonl"  # compressed whatever its name says
    path.write_bytes(packed)
    assert [obj for _, obj in iter_jsonl(path)] == rows

    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(RadoncInputError, match="damaged gzip file") as error:
        list(iter_jsonl(path))
    assert error.value.file == str(path)
