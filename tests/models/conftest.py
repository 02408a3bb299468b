from __future__ import annotations

import pytest

from radonc_llm.models.registry import load_model


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    """tiny-llama saved as a model folder, whole (chat template included); copy it to change it."""
    folder = tmp_path_factory.mktemp("models") / "tiny"
    model, tokenizer = load_model("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
