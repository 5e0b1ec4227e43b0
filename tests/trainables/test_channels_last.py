"""channels_last: auto by device, recorded in results, and the same numbers as contiguous."""
import pytest
import torch

from trainables.config import TrialConfig
from trainables.engine import Trainer, resolve_channels_last
from trainables.models import create_model

TINY = dict(dataset="synthetic", ratio=10.0, img_max=40, batch_size=32, eval_batch_size=100,
            epochs=1, eval_every=1, device="cpu")


def test_auto_resolves_by_device_type_and_explicit_wins():
    assert TrialConfig().channels_last is None                       # the default is auto
    assert resolve_channels_last(None, torch.device("cpu")) is True
    assert resolve_channels_last(None, torch.device("cuda")) is True
    assert resolve_channels_last(None, torch.device("mps")) is False   # unmeasured: off
    for dev in ("cpu", "cuda", "mps"):
        assert resolve_channels_last(False, torch.device(dev)) is False
        assert resolve_channels_last(True, torch.device(dev)) is True


@pytest.mark.parametrize("setting, used", [(None, True), (False, False)])
def test_the_choice_is_applied_and_recorded(setting, used):
    trainer = Trainer(TrialConfig(**TINY, channels_last=setting))
    assert trainer.channels_last is used
    conv = trainer.model.backbone.conv1.weight if hasattr(trainer.model, "backbone") else \
        next(p for p in trainer.model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) is used
    x, _ = next(iter(trainer.train_loader))
    assert x.is_contiguous(memory_format=torch.channels_last) is used
    m = trainer.fit()
    assert m["channels_last_used"] is used and trainer.history[-1]["channels_last_used"] is used
    assert trainer.cfg.channels_last is setting          # the config keeps what was asked


@pytest.mark.parametrize("model, size", [("resnet32", 32), ("resnet50", 64)])
def test_channels_last_gives_the_contiguous_logits(model, size):
    """Same weights and input in both layouts, fp32 on CPU; both against a float64 run."""
    torch.manual_seed(0)
    net = create_model(model, 10).eval()
    x = torch.randn(8, 3, size, size)
    with torch.no_grad():
        ref = net.double()(x.double())[0]
        net = net.float()
        plain = net(x)[0]
        cl_net = net.to(memory_format=torch.channels_last)
        cl = cl_net(x.contiguous(memory_format=torch.channels_last))[0]
    scale = ref.abs().max().item()
    for got in (plain, cl):
        assert (got.double() - ref).abs().max().item() <= 1e-4 * scale
    assert torch.allclose(cl, plain, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_channels_last_on_cuda_gives_the_contiguous_logits_and_is_the_auto_choice():
    dev = torch.device("cuda")
    assert resolve_channels_last(None, dev) is True
    torch.manual_seed(0)
    net = create_model("resnet32", 10).eval().to(dev)
    x = torch.randn(64, 3, 32, 32, device=dev)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False          # compare fp32 with fp32
    try:
        with torch.no_grad():
            ref = net.double()(x.double())[0]
            net = net.float()
            plain = net(x)[0]
            cl = net.to(memory_format=torch.channels_last)(
                x.contiguous(memory_format=torch.channels_last))[0]
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    scale = ref.abs().max().item()
    for got in (plain, cl):
        assert (got.double() - ref).abs().max().item() <= 1e-4 * scale
