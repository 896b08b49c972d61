"""The domain classifier (:mod:`.classifier`) as a torch-fidelity feature extractor, registered under
:data:`~.classifier.EXTRACTOR_NAME` on import, so that FID, KID and precision/recall in domain features go through
torch-fidelity's own batching and uint8 conventions. Apart from the classifier because importing torch-fidelity
costs more than importing torch (it imports torchvision), and training the classifier needs none of it."""

from __future__ import annotations

import torch
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from .classifier import EXTRACTOR_NAME, FEATURE_NAME, MetricInputError, load_domain_classifier, to_unit_range


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper: uint8 (N, C, H, W) in, ``(features float32 (N, 4w),)`` out.

    Built by ``torch_fidelity.utils.create_feature_extractor(EXTRACTOR_NAME, [FEATURE_NAME],
    feature_extractor_weights_path=<checkpoint>)``. Without a checkpoint path it refuses: unlike
    torch-fidelity's own extractors there is nothing to download.
    """

    def __init__(self, name: str, features_list, feature_extractor_weights_path: str | None = None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise MetricInputError(f"feature extractor {name!r} needs feature_extractor_weights_path: the "
                                   "checkpoint written by train_domain_classifier")
        self.net, meta = load_domain_classifier(feature_extractor_weights_path)
        self.dataset = meta["dataset"]
        self.spec = meta["spec"]

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_NAME,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        if metric not in ("fid", "kid", "prc"):
            raise MetricInputError(f"the domain classifier provides features for 'fid', 'kid' and 'prc', "
                                   f"not {metric!r}")
        return FEATURE_NAME

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        expected = (self.spec["in_channels"], *self.spec["image_size"])
        if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() != 4 or tuple(x.shape[1:]) != expected:
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise MetricInputError(f"domain classifier (trained on {self.dataset}) expects uint8 images "
                                   f"(N, {', '.join(map(str, expected))}), got {got}")
        return (self.net.features(to_unit_range(x)).to(torch.float32),)


# Registering twice raises inside torch-fidelity; the guard makes re-imports (and reloads) harmless.
if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor(EXTRACTOR_NAME, DomainFeatureExtractor)
