import json

import pytest
import torch

from plumenet.errors import ConfigError
from plumenet.model.registry import build_model
from plumenet.training.checkpoints import (
    CHECKPOINT_STATE,
    CHECKPOINT_WEIGHTS,
    load_checkpoint,
    save_checkpoint,
)
from tests.helpers.training import tiny_config


def _stepped(seed):
    model = build_model(tiny_config(), seed=seed)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-3)
    model.head(torch.randn(1, model.backbone.embed_dim, 4, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip(tmp_path):
    assert load_checkpoint(tmp_path, *_stepped(0)) is None
    model, optimizer = _stepped(0)
    save_checkpoint(tmp_path, model, optimizer, {"epoch": 3, "history": [{"epoch": 1}]})
    assert (tmp_path / CHECKPOINT_WEIGHTS).is_file() and (tmp_path / CHECKPOINT_STATE).is_file()
    assert not list(tmp_path.glob("*.tmp"))
    other, other_opt = _stepped(1)
    doc = load_checkpoint(tmp_path, other, other_opt)
    assert doc == {"epoch": 3, "history": [{"epoch": 1}]}
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    saved, loaded = optimizer.state_dict(), other_opt.state_dict()
    # hyper-parameters travel as JSON (tuples come back as lists)
    assert loaded["param_groups"] == json.loads(json.dumps(saved["param_groups"]))
    for idx, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(loaded["state"][idx][name], value), (idx, name)


def test_checkpoint_of_another_model_is_a_user_error(tmp_path):
    save_checkpoint(tmp_path, *_stepped(0), {"epoch": 1})
    bigger = build_model(tiny_config(112), seed=0)
    with pytest.raises(ConfigError, match="does not fit this model"):
        load_checkpoint(tmp_path, bigger, torch.optim.AdamW(bigger.head.parameters()))
