"""Atomic, content-hashed output and provenance.

Every artifact is written to a temporary file in its destination folder and moved into place with
``os.replace``, so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    """torch.save through memory: the archive's inner folder is then always "archive", not the name of the
    temporary file, so the same object gives the same bytes (and content hash) every time."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_array(*arrays: np.ndarray) -> str:
    """Content hash of arrays (dtype, shape and bytes), independent of the file format."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def git_commit() -> str:
    """The commit of the working tree, with ``+dirty`` when it has uncommitted changes."""
    try:
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: Any = None) -> str:
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def peak_memory_mb(device: Any) -> float:
    """Peak CUDA memory allocated by tensors on ``device`` (a torch.device), else the process's peak resident set
    size, in MiB."""
    import resource
    import sys

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10  # bytes on macOS, KiB on Linux


def provenance(device: Any = None) -> dict[str, str]:
    """What produced a result: code version, package versions and device."""
    import importlib.metadata as md

    versions = {}
    for name in ("diffsteps", "torch", "torchvision", "torch-fidelity", "numpy"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "absent"
    return {"git_commit": git_commit(), "versions": versions, "device": device_name(device),
            "python": platform.python_version()}


def atomic_save_grid(path: str | Path, images: np.ndarray | None, *, nrow: int = 8, min_size: int = 256,
                     caption: str | None = None) -> None:
    """A PNG grid of uint8 images (N, C, H, W), upscaled (nearest) so that small images stay visible.

    With ``images=None`` it writes a grey tile carrying ``caption`` (the grid of a failed cell).
    """
    from PIL import Image, ImageDraw

    if images is None or len(images) == 0:
        img = Image.new("RGB", (min_size * 2, min_size // 2), (200, 200, 200))
        ImageDraw.Draw(img).text((8, 8), (caption or "no samples")[:120], fill=(120, 0, 0))
    else:
        n, c, h, w = images.shape
        cols = min(nrow, n)
        rows = -(-n // cols)
        canvas = np.zeros((c, rows * (h + 1) + 1, cols * (w + 1) + 1), np.uint8)
        for k in range(n):
            r, q = divmod(k, cols)
            canvas[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = images[k]
        arr = canvas[0] if c == 1 else canvas.transpose(1, 2, 0)
        img = Image.fromarray(arr)
        scale = max(1, min_size // max(img.size))
        img = img.resize((img.size[0] * scale, img.size[1] * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
