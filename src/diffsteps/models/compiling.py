"""``torch.compile`` of a network, as ``train.compile`` and ``sampling.compile`` ask for it."""

from __future__ import annotations

import torch
from torch import nn

#: the backend; the tests use ``aot_eager`` (the same graph capture and autograd, without code generation, which
#: takes minutes on a CPU)
BACKEND = "inductor"


def compiled(net: nn.Module, enabled: bool) -> nn.Module:
    """``net`` compiled (forward, and backward where it is trained) when ``enabled``, else ``net`` itself.

    The compiled module reads and writes ``net``'s own parameters and forwards attribute access to it, so the
    caller keeps ``net`` for its state dict, its EMA and its optimiser. Shapes are static: a batch of another size
    (the last one of a job) compiles once more."""
    return torch.compile(net, backend=BACKEND, dynamic=False) if enabled else net
