"""Data preparation: shapes, pixel mapping, seeded splits, content hashes, folders, offline errors."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest
from PIL import Image

from diffsteps.config import DataConfig
from diffsteps.data import DataError, FolderError, load_split, prepare
from diffsteps.data.datasets import TORCHVISION
from diffsteps.io import read_json


def data_cfg(**kw) -> DataConfig:
    base = dict(dataset="digits", n_heldout=100, split_seed=0, raw_dir="unused")
    return DataConfig(**{**base, **kw})


def row_hashes(images: np.ndarray) -> set[str]:
    return {hashlib.sha256(img.tobytes()).hexdigest() for img in images}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return prepare(data_cfg(), out), out


def test_digits_shapes_and_pixel_mapping(digits):
    record, out = digits
    train, train_labels = load_split(out / "train.npz")
    heldout, heldout_labels = load_split(out / "heldout.npz")
    assert train.dtype == heldout.dtype == np.uint8
    assert train.shape == (1797 - 100, 1, 8, 8) and heldout.shape == (100, 1, 8, 8)
    assert train_labels.dtype == np.int64 and train_labels.shape == (1697,) and heldout_labels.shape == (100,)
    both = np.concatenate([train, heldout])
    assert both.max() == 255 and both.min() == 0
    # 0..16 mapped by round(v·255/16): only these 17 levels can occur
    assert set(np.unique(both)) <= {round(v * 255 / 16) for v in range(17)}
    assert record["image_shape"] == [1, 8, 8] and record["labelled"] is True
    assert (record["n_train"], record["n_heldout"]) == (1697, 100)
    assert read_json(out / "data.json") == record
    assert {"git_commit", "versions"} <= set(record["provenance"])


def test_heldout_exact_and_disjoint(digits):
    _, out = digits
    train, _ = load_split(out / "train.npz")
    heldout, _ = load_split(out / "heldout.npz")
    assert len(heldout) == 100
    train_rows, heldout_rows = row_hashes(train), row_hashes(heldout)  # digits holds no duplicate images
    assert not train_rows & heldout_rows
    assert len(train_rows | heldout_rows) == 1797, "together the splits are the whole data set"


def test_split_is_seeded_and_hash_stable(digits, tmp_path):
    record, _ = digits
    again = prepare(data_cfg(), tmp_path / "again")
    assert again["sha256"] == record["sha256"]
    other = prepare(data_cfg(split_seed=1), tmp_path / "other")
    assert other["sha256"]["heldout"] != record["sha256"]["heldout"]
    assert other["sha256"]["train"] != record["sha256"]["train"]


def test_mnist5k_padded(tmp_path):
    record = prepare(data_cfg(dataset="mnist5k", n_heldout=500), tmp_path)
    train, labels = load_split(tmp_path / "train.npz")
    heldout, _ = load_split(tmp_path / "heldout.npz")
    assert train.shape == (4500, 1, 32, 32) and heldout.shape == (500, 1, 32, 32)
    assert record["image_shape"] == [1, 32, 32] and labels.shape == (4500,)
    both = np.concatenate([train, heldout])
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not both[:, :, border].any(), "the 2-pixel padding must be zero"
    assert both.max() == 255
    assert not row_hashes(train) & row_hashes(heldout)


def test_heldout_must_leave_training_images(tmp_path):
    with pytest.raises(DataError, match=r"n_heldout = 1797 .*1797 images"):
        prepare(data_cfg(n_heldout=1797), tmp_path)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(DataError, match=r"'imagenet'.*digits.*mnist5k"):
        prepare(data_cfg(dataset="imagenet"), tmp_path)


def test_shape_keys_rejected_for_fixed_shape_sets(tmp_path):
    with pytest.raises(DataError, match=r"data.image_size = 16 .*only applies to 'folder'"):
        prepare(data_cfg(image_size=16), tmp_path)


# ---- torchvision data sets, offline


def test_mnist_offline_error_names_path_and_remedy(tmp_path):
    raw = tmp_path / "raw"
    with pytest.raises(DataError) as info:
        prepare(data_cfg(dataset="mnist", raw_dir=str(raw)), tmp_path / "out")
    msg = str(info.value)
    assert str(raw / "MNIST" / "raw") in msg
    assert "train-images-idx3-ubyte" in msg
    assert "python -m diffsteps download-data --dataset mnist" in msg
    assert not (raw / "MNIST").exists(), "an offline load must not create or download anything"


def _write_idx(path, array: np.ndarray) -> None:
    """IDX file (big-endian magic 0x08 = uint8, ndim, then each dimension as int32)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_from_local_files(tmp_path):
    folder = tmp_path / "raw" / TORCHVISION["mnist"].folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(1, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    record = prepare(data_cfg(dataset="mnist", n_heldout=10, raw_dir=str(tmp_path / "raw")), tmp_path / "out")
    train, labels = load_split(tmp_path / "out" / "train.npz")
    assert train.shape == (30, 1, 32, 32) and labels.dtype == np.int64
    assert record["n_heldout"] == 10 and train[:, :, :2].max() == 0 and train[:, :, 2:30, 2:30].min() >= 1


def test_download_refuses_bundled_sets(tmp_path):
    from diffsteps.data import download

    with pytest.raises(DataError, match="digits"):
        download("digits", tmp_path)


# ---- image folders


def _make_folder(root, n=12):
    rng = np.random.default_rng(1)
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)  # non-square: exercises the crop
        Image.fromarray(arr).save(sub / f"img{i:02d}.png")
    (root / "notes.txt").write_text("not an image")


def test_folder_dataset(tmp_path):
    _make_folder(tmp_path / "imgs")
    cfg = data_cfg(dataset="folder", folder=str(tmp_path / "imgs"), image_size=16, n_heldout=3)
    record = prepare(cfg, tmp_path / "out")
    train, labels = load_split(tmp_path / "out" / "train.npz")
    heldout, _ = load_split(tmp_path / "out" / "heldout.npz")
    assert labels is None and record["labelled"] is False
    assert train.shape == (9, 3, 16, 16) and heldout.shape == (3, 3, 16, 16) and train.dtype == np.uint8
    assert record["config"]["data"]["channels"] == 3 and record["image_shape"] == [3, 16, 16]
    again = prepare(cfg, tmp_path / "again")
    assert again["sha256"] == record["sha256"]
    gray = prepare(dataclasses.replace(cfg, channels=1), tmp_path / "gray")
    assert gray["image_shape"] == [1, 16, 16]


def test_folder_needs_image_size(tmp_path):
    _make_folder(tmp_path / "imgs", n=2)
    with pytest.raises(FolderError, match="image_size"):
        prepare(data_cfg(dataset="folder", folder=str(tmp_path / "imgs"), n_heldout=1), tmp_path / "out")


def test_folder_missing_or_empty(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FolderError, match=str(missing)):
        prepare(data_cfg(dataset="folder", folder=str(missing), image_size=8), tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no images here")
    with pytest.raises(FolderError, match=f"{empty}.*holds no images"):
        prepare(data_cfg(dataset="folder", folder=str(empty), image_size=8), tmp_path / "out")


def test_load_split_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_split(tmp_path / "train.npz")


def test_idx_files_may_be_gzipped_by_users(tmp_path):
    """Users often leave the .gz files: the error must still point at the unzipped names."""
    folder = tmp_path / "raw" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(b"\0")
    with pytest.raises(DataError, match="unzipped"):
        prepare(data_cfg(dataset="mnist", raw_dir=str(tmp_path / "raw")), tmp_path / "out")
