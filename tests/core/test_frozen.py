"""What a checkpoint keeps of a model whose weights are partly frozen (ftrecipe/runner/frozen.py); the
runs that resume from such checkpoints: test_sharded_runs.py, test_deepspeed_runs.py, text/test_runs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ftrecipe.errors import RunFailure
from ftrecipe.runner.frozen import check_same_base, frozen_digest, load_without_frozen, without_frozen


class Tied(torch.nn.Module):
    """A frozen body with a BatchNorm (its statistics move while frozen), a trainable head, and an output
    layer tied to the embedding (two names, one trainable tensor)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 4)
        self.body = torch.nn.Linear(4, 4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.out = torch.nn.Linear(4, 10, bias=False)
        self.out.weight = self.embed.weight
        for parameter in [*self.body.parameters(), *self.norm.parameters()]:
            parameter.requires_grad_(False)


def test_a_checkpoint_keeps_what_trains_and_every_buffer():
    model = Tied()
    kept = without_frozen(model.state_dict(), model)
    assert set(kept) == {"embed.weight", "out.weight", "norm.running_mean", "norm.running_var", "norm.num_batches_tracked"}


def test_the_frozen_weights_load_as_built_and_everything_else_from_the_file(tmp_path: Path):
    from safetensors.torch import save_file

    trained = Tied()
    with torch.no_grad():
        trained.embed.weight.add_(1.0)
        trained.norm.running_mean.add_(2.0)
        trained.body.weight.add_(3.0)  # (a frozen weight the file must not carry back)
    save_file({}, str(tmp_path / "empty.safetensors"))
    from accelerate.utils import save  # as save_state writes it (one of two tied names)

    save(without_frozen(trained.state_dict(), trained), tmp_path / "model.safetensors", safe_serialization=True)
    fresh = Tied()
    load_without_frozen(fresh, tmp_path / "model.safetensors")
    assert torch.equal(fresh.embed.weight, trained.embed.weight) and fresh.out.weight is fresh.embed.weight
    assert torch.equal(fresh.norm.running_mean, trained.norm.running_mean)
    assert torch.equal(fresh.body.weight, Tied().body.weight)
    with pytest.raises(RunFailure, match=r"missing \[.*'embed.weight'"):  # a trainable weight absent: refused
        load_without_frozen(Tied(), tmp_path / "empty.safetensors")
    save(trained.state_dict(), tmp_path / "whole.safetensors", safe_serialization=True)  # an earlier release's
    earlier = Tied()
    load_without_frozen(earlier, tmp_path / "whole.safetensors")
    assert all(torch.equal(value, trained.state_dict()[key]) for key, value in earlier.state_dict().items())


def test_the_digest_follows_the_frozen_weights_only():
    model = Tied()
    digest = frozen_digest(model)
    assert digest == frozen_digest(Tied())
    with torch.no_grad():
        model.embed.weight.add_(1.0)  # training moves what trains: the same base
    assert frozen_digest(model) == digest
    with torch.no_grad():
        model.body.weight[-1, -1] += 1.0  # another base
    assert frozen_digest(model) != digest
    everything = torch.nn.Linear(2, 2)
    assert frozen_digest(everything) is None  # nothing frozen: the checkpoint holds the whole model
    check_same_base(None, digest, Path("step-0000004"))  # a checkpoint that recorded none (held the whole model)
    check_same_base(digest, digest, Path("step-0000004"))
    with pytest.raises(RunFailure, match="frozen weights differ from those checkpoint step-0000004 was trained on"):
        check_same_base(digest, frozen_digest(model), Path("step-0000004"))
