import pytest
import torch

from radonc_llm.errors import RadoncInputError
from radonc_llm.infer.backends import torch_dtype
from radonc_llm.models import precision
from radonc_llm.pipeline import PredictSection


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def native(monkeypatch, value: bool) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)


@pytest.mark.parametrize("has_bf16,expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_inference_dtype_follows_the_cpu(cpu_only, monkeypatch, has_bf16, expected):
    native(monkeypatch, has_bf16)
    assert precision.resolve_inference_dtype("auto") == expected
    assert torch_dtype("auto") == getattr(torch, expected)
    # A study config records what will run, not "auto".
    assert PredictSection(dtype="auto").dtype == expected


@pytest.mark.parametrize("has_bf16,expected", [(True, "bf16"), (False, "fp32")])
def test_auto_training_precision_follows_the_cpu(monkeypatch, has_bf16, expected):
    native(monkeypatch, has_bf16)
    assert precision.resolve_precision("auto", "cpu") == expected


def test_explicit_bf16_on_a_cpu_that_emulates_it_warns(cpu_only, monkeypatch):
    native(monkeypatch, False)
    with pytest.warns(UserWarning, match="no native bf16"):
        assert precision.resolve_inference_dtype("bfloat16") == "bfloat16"
    with pytest.warns(UserWarning, match="no native bf16"):
        assert precision.resolve_precision("bf16", "cpu") == "bf16"


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "Path", lambda _: cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx avx2 fma\n")
    assert not precision.cpu_has_native_bf16()
    cpuinfo.write_text("flags\t\t: fpu avx avx2 avx512f avx512_bf16\n")
    assert precision.cpu_has_native_bf16()
    cpuinfo.unlink()
    assert not precision.cpu_has_native_bf16()


def test_unknown_dtype_is_refused_naming_the_choices():
    with pytest.raises(RadoncInputError, match="auto, float32, bfloat16"):
        torch_dtype("float16")


def test_local_inference_goes_to_the_gpu_where_there_is_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    native(monkeypatch, False)  # the CPU's bf16 no longer matters
    assert precision.inference_device() == "cuda"
    assert precision.resolve_inference_dtype("auto") == "bfloat16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision.inference_device() == "cpu"
    assert precision.resolve_inference_dtype("auto") == "float32"


def test_backend_loads_onto_the_device_it_is_given(cpu_only):
    from radonc_llm.infer.backends import TransformersBackend

    backend = TransformersBackend.load("tiny-llama", dtype=torch.float32, device="cpu")
    assert backend.model.device.type == "cpu"
    assert next(backend.model.parameters()).dtype == torch.float32
    answer = backend.answer(
        "modality", [[{"role": "user", "content": "C61"}]], decoding="constrained"
    )
    assert answer[0].prediction in ("photon", "proton", "electron", "brachytherapy")
