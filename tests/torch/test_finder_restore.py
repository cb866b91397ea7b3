"""find_lr restores what the optimizer owns beyond the model, and rejects unusable inputs with
a one-line error naming the parameter."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from lrkit.torch import find_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lrkit.finder.LRFinderWarning")


def data(n=128, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, 0] > 0).long()
    return [(x[i : i + 16], y[i : i + 16]) for i in range(0, n, 16)]


class TempLoss(nn.Module):
    """Cross-entropy with a learnable temperature: a parameter the loss owns."""

    def __init__(self):
        super().__init__()
        self.log_t = nn.Parameter(torch.tensor(0.25))

    def forward(self, out, y):
        return nn.functional.cross_entropy(out * self.log_t.exp(), y)


def test_loss_module_parameters_and_grads_restored():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    loss = TempLoss()
    opt = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-3)
    loss.log_t.grad = torch.tensor(0.5)
    t0, g0 = loss.log_t.detach().clone(), loss.log_t.grad.clone()
    w0 = model.weight.detach().clone()
    find_lr(model, opt, loss, data(), num_iter=20, end_lr=1.0)
    assert torch.equal(loss.log_t.detach(), t0)
    assert torch.equal(loss.log_t.grad, g0)
    assert torch.equal(model.weight.detach(), w0)
    assert opt.state == {} or all(len(s) == 0 for s in opt.state.values())


def test_loss_module_parameter_without_grad_gets_none_back():
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    loss = TempLoss()
    opt = torch.optim.SGD(
        [{"params": model.parameters()}, {"params": loss.parameters(), "lr": 0.1}], lr=0.01
    )
    t0 = loss.log_t.detach().clone()
    find_lr(model, opt, loss, data(), num_iter=20, end_lr=1.0)
    assert torch.equal(loss.log_t.detach(), t0)
    assert loss.log_t.grad is None
