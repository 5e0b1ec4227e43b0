"""Every registered loss and model, whatever it is: a new one is tested by registering it.

The checks are those every entry must pass (timm's model tests are the model): forward,
backward, finite values and gradients, and a state_dict round trip that carries the loss's
running state (EQLv2's accumulated gradients) so a resumed run continues identically.
Formulas are tested against float64 references in test_losses.py; this file is about shape.
"""
from __future__ import annotations

import pytest
import torch

from trainables.config import TrialConfig
from trainables.data import DATASETS, describe_dataset, get_dataset, list_datasets
from trainables.losses import LOSSES, create_loss, describe_loss, drw_weights, list_losses
from trainables.methods import ELM_FAMILY
from trainables.models import MODELS, create_model, describe_model, list_models

COUNTS = [50, 30, 18, 11, 7, 4, 3, 2, 1, 1]        # a 10-class long tail
N, D = 8, 16


def batch(seed: int, head: str):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, len(COUNTS), generator=g, dtype=torch.float64)
    if head == "cosine":
        z = torch.tanh(z)                            # cosine logits live in [-1, 1]
    y = torch.randint(0, len(COUNTS), (N,), generator=g)
    y[:2] = torch.tensor([0, len(COUNTS) - 1])       # the head and the rarest class
    h = torch.rand(N, D, generator=g, dtype=torch.float64)   # pooled features (after ReLU)
    return z.requires_grad_(), y, h.requires_grad_()


def step(loss, seed: int, epoch: int):
    """One training step of the loss alone: value and gradients on logits and features."""
    loss.set_epoch(epoch)
    z, y, h = batch(seed, LOSSES[loss.registry_name].head)
    value = loss(z, y, h)
    value.backward()
    return value.detach(), z.grad, h.grad


def build(name: str):
    loss = create_loss(name, COUNTS).double()
    loss.registry_name = name
    if LOSSES[name].takes_weight:                    # as DRW after its start epoch
        loss.set_weight(drw_weights(COUNTS, 10, 0, 0.9999))
    return loss.train()


# Every loss at epoch 0 and at a late epoch (IB's term starts at ib_start_epoch).
@pytest.mark.parametrize("epoch", [0, 10_000])
@pytest.mark.parametrize("name", list_losses())
def test_loss_forward_backward_finite(name, epoch):
    value, gz, gh = step(build(name), seed=0, epoch=epoch)
    assert value.ndim == 0 and torch.isfinite(value), name
    assert gz is not None and torch.isfinite(gz).all() and gz.abs().sum() > 0, name
    assert gh is None or torch.isfinite(gh).all(), name


@pytest.mark.parametrize("name", list_losses())
def test_loss_state_dict_round_trip_continues_identically(name):
    """After a step, a fresh loss loaded with the state_dict gives the same next step."""
    original = build(name)
    step(original, seed=0, epoch=10_000)
    resumed = build(name)
    resumed.load_state_dict(original.state_dict())
    assert original.state_dict().keys() == resumed.state_dict().keys()
    for (k, a), b in zip(original.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), (name, k)
    for s in (1, 2):                                 # two more steps: running state follows
        v1, gz1, gh1 = step(original, seed=s, epoch=10_000)
        v2, gz2, gh2 = step(resumed, seed=s, epoch=10_000)
        assert torch.equal(v1, v2) and torch.equal(gz1, gz2), name
        assert (gh1 is None and gh2 is None) or torch.equal(gh1, gh2), name


def test_eqlv2_state_is_in_the_state_dict_and_moves():
    loss = build("eqlv2")
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    step(loss, seed=0, epoch=0)
    after = loss.state_dict()
    assert {"pos_grad", "neg_grad", "pos_neg"} <= set(after)
    assert not torch.equal(before["pos_grad"], after["pos_grad"])


@pytest.mark.parametrize("name", list_models())
def test_model_forward_backward_finite_and_state_dict(name):
    torch.manual_seed(0)
    model = create_model(name, 10, in_channels=3, head="linear").train()
    x = torch.randn(2, 3, 32, 32)                    # 32 px is enough for a shape check
    logits, feat = model(x)
    assert logits.shape == (2, 10) and feat.ndim == 2 and feat.shape[0] == 2
    assert torch.isfinite(logits).all() and torch.isfinite(feat).all()
    logits.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    copy = create_model(name, 10, in_channels=3, head="linear")
    copy.load_state_dict(model.state_dict())
    model.eval(), copy.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[0], copy(x)[0])


@pytest.mark.parametrize("name", list_models())
def test_model_cosine_head_outputs_cosines(name):
    torch.manual_seed(0)
    model = create_model(name, 10, in_channels=1, head="cosine").eval()
    with torch.no_grad():
        logits, _ = model(torch.randn(2, 1, 32, 32))
    assert logits.shape == (2, 10) and logits.abs().max() <= 1 + 1e-5
    assert logits.abs().max() > 1e-3                 # not a constant zero head


@pytest.mark.parametrize("kind, names, registry, describe", [
    ("loss", list_losses, LOSSES, describe_loss),
    ("model", list_models, MODELS, describe_model),
    ("dataset", list_datasets, DATASETS, describe_dataset)])
def test_one_registry_shape(kind, names, registry, describe):
    assert names() == sorted(registry) and len(names()) >= 2
    for n in names():
        assert registry[n].name == n and describe(n) and "\n" not in describe(n), (kind, n)
    first = names()[0]
    assert names(first) == [first] and names(first[:2] + "*")[0] == first
    assert names("no-such-*") == []
    with pytest.raises(ValueError, match=rf"unknown {kind} 'nope'; choose one of .*{first}"):
        registry.get_spec("nope")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(registry[first])


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown loss 'nope'.*'ce'"):
        create_loss("nope", COUNTS)
    with pytest.raises(ValueError, match=r"unknown model 'nope'.*'resnet32'"):
        create_model("nope", 10)
    with pytest.raises(ValueError, match=r"unknown dataset 'nope'.*'cifar10'"):
        get_dataset("nope")
    with pytest.raises(ValueError, match=r"loss='nope' is not valid; choose one of .*'ce'"):
        TrialConfig(loss="nope")


def test_removed_optimizer_field_reads_old_configs_and_refuses_other_values():
    old = {**TrialConfig().to_dict(), "optimizer": "sgd"}   # as results saved before
    assert TrialConfig.from_dict(old) == TrialConfig()
    assert "optimizer" not in TrialConfig().to_dict()
    with pytest.raises(ValueError, match=r"optimizer='adam' is not supported"):
        TrialConfig.from_dict({**old, "optimizer": "adam"})


def test_the_elm_family_is_the_losses_that_take_lambda():
    """trainables.methods.ELM_FAMILY (labels, the λ figure, the verdicts) names them by hand."""
    assert set(ELM_FAMILY) == {n for n, spec in LOSSES.items() if "lam" in spec.defaults}
