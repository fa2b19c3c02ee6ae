"""A base model that is not here: a located error that says where ftrecipe looked and how to get it."""

from __future__ import annotations

import pytest

from ftrecipe import hub
from ftrecipe.errors import RecipeRuntimeError


def refuse(source, **kwargs):
    raise OSError(f"{source} does not appear to have a file named config.json (kwargs {sorted(kwargs)})")


def test_a_hub_id_that_is_not_cached_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecipeRuntimeError) as caught:
        hub.load_pretrained(refuse, "org/model", key=("model", "tokenizer"), what="tokenizer")
    assert caught.value.path == ("model", "tokenizer")
    message = caught.value.message
    assert message.startswith("'org/model' is not a local directory and not in the Hugging Face cache (")
    assert "the network is switched off (HF_HUB_OFFLINE)" in message and "`hf download org/model`" in message


def test_without_a_network_the_cache_alone_is_asked_at_once(monkeypatch):
    """No minute of retries per file: an unreachable Hub means local_files_only."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    seen = {}

    def load(source, **kwargs):
        seen.update(kwargs)
        raise OSError("not cached")

    with pytest.raises(RecipeRuntimeError, match="the Hub cannot be reached from here"):
        hub.load_pretrained(load, "org/model", revision="main")
    assert seen == {"revision": "main", "local_files_only": True}


def test_a_gated_repository_says_to_log_in(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)

    def gated(source, **kwargs):
        raise OSError("You are trying to access a gated repo. 401 Client Error")

    with pytest.raises(RecipeRuntimeError) as caught:
        hub.load_pretrained(gated, "meta-llama/Llama-2-7b-hf")
    assert "downloading it failed (You are trying to access a gated repo" in caught.value.message
    assert "accept its licence on huggingface.co and log in (`hf auth login`)" in caught.value.message


def test_a_local_folder(tmp_path):
    with pytest.raises(RecipeRuntimeError, match=r"no model at '.*absent': no such directory"):
        hub.load_pretrained(refuse, str(tmp_path / "absent"))
    with pytest.raises(RecipeRuntimeError, match=r"cannot load the model from '.*': .* does not appear to have a file named config.json"):
        hub.load_pretrained(refuse, str(tmp_path))
    assert hub.load_pretrained(lambda source, **kw: (source, kw), str(tmp_path), dtype="x") == (str(tmp_path), {"dtype": "x"})
