"""Tests for sparseae.data: IDX and npz parsing, validation, and the Keras source."""

import gzip
import hashlib
import io
import socket
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from sparseae import data
from sparseae.data import DataError, load_mnist, read_idx

STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

CANONICAL_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array, count=None, dims=None, byteorder=">"):
    """Build IDX bytes from a uint8 array, with optional header overrides for bad-file cases."""
    array = np.asarray(array, dtype=np.uint8)
    shape = list(dims if dims is not None else array.shape)
    if count is not None:
        shape[0] = count
    magic = 0x0800 | array.ndim
    header = struct.pack(f"{byteorder}I", magic) + struct.pack(f"{byteorder}{len(shape)}I", *shape)
    return header + array.tobytes()


def make_split(count, seed):
    """Return random uint8 images (count, 28, 28) and labels (count,)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    return images, labels


def make_arrays():
    """Return small (x_train, y_train, x_test, y_test) arrays."""
    x_train, y_train = make_split(5, seed=0)
    x_test, y_test = make_split(3, seed=1)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_idx_dir(directory, arrays, spelling="gz", overrides=None):
    """Write the four IDX files under one name spelling, replacing a stem's content via overrides."""
    directory.mkdir(parents=True, exist_ok=True)
    contents = {
        STEMS["train_images"]: idx_bytes(arrays["x_train"]),
        STEMS["train_labels"]: idx_bytes(arrays["y_train"]),
        STEMS["test_images"]: idx_bytes(arrays["x_test"]),
        STEMS["test_labels"]: idx_bytes(arrays["y_test"]),
    }
    contents.update(overrides or {})

    paths = {}
    for stem, content in contents.items():
        name = stem.replace("-idx", ".idx") if spelling.startswith("dotted") else stem
        compressed = spelling in ("gz", "dotted-gz")
        if compressed:
            name += ".gz"
            content = gzip.compress(content)
        path = directory / name
        path.write_bytes(content)
        paths[stem] = path
    return paths


def npz_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def assert_arrays_equal(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for name, value in zip(("x_train", "y_train", "x_test", "y_test"), (x_train, y_train, x_test, y_test)):
        assert value.dtype == np.uint8, name
        assert value.shape == arrays[name].shape, name
        np.testing.assert_array_equal(value, arrays[name], err_msg=name)


# Round trips


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_images_round_trip(tmp_path, compress):
    images, _ = make_split(4, seed=2)
    content = idx_bytes(images)
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(content) if compress else content)

    loaded = read_idx(path)

    assert loaded.dtype == np.uint8
    assert loaded.shape == (4, 28, 28)
    np.testing.assert_array_equal(loaded, images)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
def test_read_idx_labels_round_trip(tmp_path, compress):
    labels = np.array([0, 9, 3, 7, 1], dtype=np.uint8)
    content = idx_bytes(labels)
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(content) if compress else content)

    loaded = read_idx(path)

    assert loaded.dtype == np.uint8
    assert loaded.shape == (5,)
    np.testing.assert_array_equal(loaded, labels)


def test_read_idx_detects_gzip_by_content(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    gzip_named_raw = tmp_path / "labels.gz"
    gzip_named_raw.write_bytes(idx_bytes(labels))
    raw_named_gzip = tmp_path / "labels-idx1-ubyte"
    raw_named_gzip.write_bytes(gzip.compress(idx_bytes(labels)))

    np.testing.assert_array_equal(read_idx(gzip_named_raw), labels)
    np.testing.assert_array_equal(read_idx(raw_named_gzip), labels)


def test_read_idx_returns_writable_array(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.array([4, 5], dtype=np.uint8)))

    assert read_idx(path).flags.writeable


@pytest.mark.parametrize("spelling", ["gz", "raw", "dotted-gz", "dotted-raw"])
def test_load_mnist_directory_spellings(tmp_path, spelling):
    arrays = make_arrays()
    write_idx_dir(tmp_path / "mnist", arrays, spelling=spelling)

    assert_arrays_equal(load_mnist(tmp_path / "mnist"), arrays)
    assert_arrays_equal(load_mnist(str(tmp_path / "mnist")), arrays)


def test_load_mnist_prefers_gz_over_raw(tmp_path):
    arrays = make_arrays()
    write_idx_dir(tmp_path, arrays, spelling="gz")
    other = dict(arrays, y_train=(arrays["y_train"] + 1) % 10)
    write_idx_dir(tmp_path, other, spelling="raw")

    (_, y_train), _ = load_mnist(tmp_path)

    np.testing.assert_array_equal(y_train, arrays["y_train"])


def test_load_mnist_npz_round_trip(tmp_path):
    arrays = make_arrays()
    path = tmp_path / "mnist.npz"
    path.write_bytes(npz_bytes(arrays))

    assert_arrays_equal(load_mnist(path), arrays)


def test_load_mnist_checksums_pass(tmp_path):
    arrays = make_arrays()
    paths = write_idx_dir(tmp_path, arrays)
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in paths.values()]
    (tmp_path / "SHA256SUMS").write_text("\n".join(lines) + "\n")

    assert_arrays_equal(load_mnist(tmp_path), arrays)


def test_describe_source_names(tmp_path):
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(npz_bytes(make_arrays()))

    assert data.describe_source(None) == "data/mnist (IDX)"
    assert data.describe_source("keras") == "keras.datasets.mnist"
    assert data.describe_source(data.DEFAULT_DATA_DIR) == "data/mnist (IDX)"
    assert data.describe_source(tmp_path) == f"{tmp_path} (IDX)"
    assert data.describe_source(npz) == f"{npz} (npz)"


# Shipped data


@pytest.fixture(scope="module")
def shipped():
    return load_mnist()


def test_default_data_dir_location():
    assert data.DEFAULT_DATA_DIR == Path(__file__).resolve().parent.parent / "data" / "mnist"


def test_shipped_data_shapes(shipped):
    (x_train, y_train), (x_test, y_test) = shipped

    assert x_train.shape == (60000, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28)
    assert y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8


def test_shipped_label_counts(shipped):
    (_, y_train), (_, y_test) = shipped

    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_LABEL_COUNTS


def test_shipped_pixels_span_full_range(shipped):
    (x_train, _), (x_test, _) = shipped

    assert x_train.min() == 0
    assert x_train.max() == 255
    assert x_test.max() == 255


def test_shipped_sha256sums_verify():
    sums = (data.DEFAULT_DATA_DIR / "SHA256SUMS").read_text().split("\n")
    listed = dict(reversed(line.split("  ", 1)) for line in sums if line)

    assert sorted(listed) == sorted(f"{stem}.gz" for stem in STEMS.values())
    for name, digest in listed.items():
        found = hashlib.sha256((data.DEFAULT_DATA_DIR / name).read_bytes()).hexdigest()
        assert found == digest, name


def test_shipped_files_decompress_to_canonical():
    for stem, digest in CANONICAL_SHA256.items():
        content = gzip.decompress((data.DEFAULT_DATA_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(content).hexdigest() == digest, stem


# Invalid IDX files


def labels_idx(count=4):
    return idx_bytes(np.arange(count, dtype=np.uint8))


def images_idx(count=4):
    return idx_bytes(make_split(count, seed=3)[0])


def truncated_gzip():
    compressed = gzip.compress(images_idx())
    return compressed[: len(compressed) // 2]


def corrupt_gzip():
    compressed = bytearray(gzip.compress(images_idx()))
    # The last 8 bytes are the CRC-32 and size, so flipping them fails the integrity check.
    compressed[-8] ^= 0xFF
    return bytes(compressed)


BAD_IDX_CASES = {
    "empty": (b"", "0 bytes"),
    "short label header": (labels_idx()[:6], "Expected 8 header bytes"),
    "short image header": (images_idx()[:12], "Expected 16 header bytes"),
    "shorter than magic": (b"\x00\x00", "truncated"),
    "wrong magic": (struct.pack(">I", 0x00000D03) + images_idx()[4:], "0x00000d03"),
    "little-endian labels": (idx_bytes(np.arange(3, dtype=np.uint8), byteorder="<"), "byte order"),
    "little-endian images": (idx_bytes(make_split(2, seed=4)[0], byteorder="<"), "byte order"),
    "fewer images than header": (idx_bytes(make_split(4, seed=5)[0], count=5), "promises 5 images"),
    "fewer labels than header": (idx_bytes(np.arange(4, dtype=np.uint8), count=5), "truncated"),
    "extra payload bytes": (images_idx() + b"\x00" * 7, "7 extra bytes"),
    "wrong image size": (idx_bytes(np.zeros((2, 32, 32), dtype=np.uint8)), "found 32x32"),
    "non-square images": (idx_bytes(np.zeros((2, 28, 27), dtype=np.uint8)), "found 28x27"),
    "truncated gzip": (truncated_gzip(), "truncated"),
    "corrupt gzip": (corrupt_gzip(), "corrupt"),
    "empty gzip": (gzip.compress(b""), "0 bytes"),
    "html page": (b"<html><body>Not Found</body></html>", "HTML"),
    "html doctype with whitespace": (b"\n  <!DOCTYPE html>\n<html></html>", "HTML"),
    "gzipped html": (gzip.compress(b"<!DOCTYPE html><html></html>"), "HTML"),
    "label out of range": (idx_bytes(np.array([1, 10, 2], dtype=np.uint8)), "being 10 at index 1"),
}


@pytest.mark.parametrize("content, keyword", BAD_IDX_CASES.values(), ids=BAD_IDX_CASES.keys())
def test_read_idx_rejects_bad_file(tmp_path, content, keyword):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)

    with pytest.raises(DataError) as excinfo:
        read_idx(path)

    message = str(excinfo.value)
    assert str(path) in message
    assert keyword in message


def test_read_idx_truncation_message_counts(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(make_split(4, seed=6)[0], count=5))

    with pytest.raises(DataError) as excinfo:
        read_idx(path)

    message = str(excinfo.value)
    assert "3920 payload bytes" in message
    assert "3136 bytes (4 complete images)" in message


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "absent-idx1-ubyte"

    with pytest.raises(DataError, match="not found") as excinfo:
        read_idx(path)

    assert str(path) in str(excinfo.value)


# Invalid directories


def test_load_mnist_missing_directory(tmp_path):
    directory = tmp_path / "nowhere"

    with pytest.raises(DataError) as excinfo:
        load_mnist(directory)

    message = str(excinfo.value)
    assert str(directory) in message
    assert "Accepted sources" in message
    for stem in STEMS.values():
        for name in (f"{stem}.gz", stem, stem.replace("-idx", ".idx") + ".gz"):
            assert name in message
    assert "--data keras" in message


def test_load_mnist_default_dir_missing(tmp_path, monkeypatch):
    directory = tmp_path / "data" / "mnist"
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", directory)

    with pytest.raises(DataError, match="directory not found") as excinfo:
        load_mnist()

    message = str(excinfo.value)
    assert str(directory) in message
    assert "train-images.idx3-ubyte" in message
    assert "--data" in message


def test_load_mnist_missing_one_file(tmp_path):
    paths = write_idx_dir(tmp_path, make_arrays())
    paths[STEMS["test_labels"]].unlink()

    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)

    message = str(excinfo.value)
    assert str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "t10k-labels.idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message
    assert "--data" in message


def test_load_mnist_train_count_mismatch(tmp_path):
    arrays = make_arrays()
    arrays["y_train"] = arrays["y_train"][:4]
    write_idx_dir(tmp_path, arrays)

    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)

    message = str(excinfo.value)
    assert str(tmp_path) in message
    assert "5 images" in message
    assert "4 labels" in message


def test_load_mnist_swapped_files(tmp_path):
    arrays = make_arrays()
    overrides = {STEMS["train_images"]: idx_bytes(arrays["y_train"])}
    paths = write_idx_dir(tmp_path, arrays, overrides=overrides)

    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)

    message = str(excinfo.value)
    assert str(paths[STEMS["train_images"]]) in message
    assert "contains labels, not images" in message


def test_load_mnist_bad_file_named(tmp_path):
    overrides = {STEMS["test_images"]: b"<!DOCTYPE html><html></html>"}
    paths = write_idx_dir(tmp_path, make_arrays(), overrides=overrides)

    with pytest.raises(DataError, match="HTML") as excinfo:
        load_mnist(tmp_path)

    assert str(paths[STEMS["test_images"]]) in str(excinfo.value)


def test_load_mnist_checksum_mismatch(tmp_path):
    paths = write_idx_dir(tmp_path, make_arrays())
    target = paths[STEMS["train_labels"]]
    listed = "0" * 64
    (tmp_path / "SHA256SUMS").write_text(f"{listed}  {target.name}\n")

    with pytest.raises(DataError) as excinfo:
        load_mnist(tmp_path)

    message = str(excinfo.value)
    assert str(target) in message
    assert f"Expected {listed}" in message
    assert hashlib.sha256(target.read_bytes()).hexdigest() in message


def test_checksum_mismatch_in_shipped_dir_suggests_git(tmp_path, monkeypatch):
    directory = tmp_path / "data" / "mnist"
    paths = write_idx_dir(directory, make_arrays())
    (directory / "SHA256SUMS").write_text(f"{'1' * 64} *{paths[STEMS['test_images']].name}\n")
    monkeypatch.setattr(data, "DEFAULT_DATA_DIR", directory)

    with pytest.raises(DataError, match="git checkout data/mnist"):
        load_mnist()


def test_load_mnist_checks_before_parsing(tmp_path):
    overrides = {STEMS["train_images"]: b"\x00\x00\x08"}
    paths = write_idx_dir(tmp_path, make_arrays(), overrides=overrides)
    target = paths[STEMS["train_images"]]
    (tmp_path / "SHA256SUMS").write_text(f"{'2' * 64}  {target.name}\n")

    with pytest.raises(DataError, match="SHA-256"):
        load_mnist(tmp_path)


def test_load_mnist_malformed_checksum_file(tmp_path):
    write_idx_dir(tmp_path, make_arrays())
    (tmp_path / "SHA256SUMS").write_text("not a checksum line\n")

    with pytest.raises(DataError, match="line 1 is malformed") as excinfo:
        load_mnist(tmp_path)

    assert str(tmp_path / "SHA256SUMS") in str(excinfo.value)


def test_load_mnist_nonexistent_path(tmp_path):
    path = tmp_path / "mnist.npz"

    with pytest.raises(DataError) as excinfo:
        load_mnist(path)

    message = str(excinfo.value)
    assert str(path) in message
    assert "Accepted sources" in message


def test_load_mnist_unknown_source_string():
    with pytest.raises(DataError) as excinfo:
        load_mnist("kera")

    message = str(excinfo.value)
    assert "'kera'" in message
    assert "Accepted sources" in message
    assert "'keras'" in message


# Invalid npz files


def npz_without(key):
    arrays = make_arrays()
    del arrays[key]
    return npz_bytes(arrays)


def npz_with(**changes):
    arrays = make_arrays()
    arrays.update(changes)
    return npz_bytes(arrays)


BAD_NPZ_CASES = {
    "empty": (b"", "0 bytes"),
    "not a zip": (b"just some text\n", "not a zip archive"),
    "html page": (b"<!DOCTYPE html><html>Error</html>", "HTML"),
    "single idx file": (gzip.compress(labels_idx()), "single IDX file"),
    "truncated zip": (npz_bytes(make_arrays())[:600], "truncated or corrupt"),
    "missing key": (npz_without("y_test"), "missing arrays y_test"),
    "flat images": (npz_with(x_train=np.zeros((5, 784), dtype=np.uint8)), "wrong shape"),
    "wrong image size": (npz_with(x_test=np.zeros((3, 28, 29), dtype=np.uint8)), "(3, 28, 29)"),
    "float images": (npz_with(x_train=np.zeros((5, 28, 28), dtype=np.float32)), "found float32"),
    "int64 labels": (npz_with(y_train=np.zeros(5, dtype=np.int64)), "found int64"),
    "2d labels": (npz_with(y_test=np.zeros((3, 1), dtype=np.uint8)), "wrong shape"),
    "length mismatch": (npz_with(y_train=np.zeros(4, dtype=np.uint8)), "found 5 images and 4 labels"),
    "empty split": (
        npz_with(x_test=np.zeros((0, 28, 28), dtype=np.uint8), y_test=np.zeros(0, dtype=np.uint8)),
        "split is empty",
    ),
    "label out of range": (npz_with(y_test=np.array([0, 1, 200], dtype=np.uint8)), "being 200"),
}


@pytest.mark.parametrize("content, keyword", BAD_NPZ_CASES.values(), ids=BAD_NPZ_CASES.keys())
def test_load_mnist_rejects_bad_npz(tmp_path, content, keyword):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)

    with pytest.raises(DataError) as excinfo:
        load_mnist(path)

    message = str(excinfo.value)
    assert str(path) in message
    assert keyword in message


def test_load_mnist_rejects_corrupt_npz_member(tmp_path):
    content = bytearray(npz_bytes(make_arrays()))
    # Damage the x_train payload, which follows its local zip header and npy header.
    content[300] ^= 0xFF
    path = tmp_path / "mnist.npz"
    path.write_bytes(bytes(content))

    with pytest.raises(DataError, match="truncated or corrupt") as excinfo:
        load_mnist(path)

    assert str(path) in str(excinfo.value)


# Keras source


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    home = tmp_path / "keras-home"
    home.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def keras_mnist_module():
    # Imported here so that tests which never touch Keras skip its slow import.
    import keras.datasets.mnist

    return keras.datasets.mnist


def test_keras_cache_path_follows_keras_home(keras_home):
    assert data.keras_cache_paths() == [keras_home / "datasets" / "mnist.npz"]


def test_keras_cache_path_unwritable_home(tmp_path, monkeypatch):
    home = tmp_path / "not-created"
    monkeypatch.setenv("KERAS_HOME", str(home))

    paths = data.keras_cache_paths()

    assert paths[0] == home / "datasets" / "mnist.npz"
    assert paths[1].parts[-3:] == (".keras", "datasets", "mnist.npz")
    assert len(paths) == 2


def test_keras_source_download_fails(keras_home, keras_mnist_module, monkeypatch):
    calls = []

    def failing_load_data(*args, **kwargs):
        calls.append(socket.getdefaulttimeout())
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(keras_mnist_module, "load_data", failing_load_data)
    timeout_before = socket.getdefaulttimeout()

    result = None
    with pytest.raises(DataError) as excinfo:
        result = load_mnist("keras")

    message = str(excinfo.value)
    assert result is None
    assert str(keras_home / "datasets" / "mnist.npz") in message
    assert "download" in message
    assert "Name or service not known" in message
    assert "--data data/mnist" in message
    assert "--data path/to/mnist.npz" in message
    assert calls == [data.DOWNLOAD_TIMEOUT_S]
    assert socket.getdefaulttimeout() == timeout_before


def test_keras_source_uses_cache(keras_home, keras_mnist_module, monkeypatch):
    arrays = make_arrays()
    (keras_home / "datasets").mkdir()
    (keras_home / "datasets" / "mnist.npz").write_bytes(npz_bytes(arrays))

    def unexpected_download(*args, **kwargs):
        pytest.fail("load_mnist('keras') downloaded although the cache holds mnist.npz")

    monkeypatch.setattr(keras_mnist_module, "load_data", unexpected_download)

    assert_arrays_equal(load_mnist("keras"), arrays)


def test_keras_source_corrupt_cache(keras_home, keras_mnist_module, monkeypatch):
    cache = keras_home / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    cache.write_bytes(npz_bytes(make_arrays())[:500])
    monkeypatch.setattr(keras_mnist_module, "load_data", lambda: pytest.fail("download attempted"))

    with pytest.raises(DataError) as excinfo:
        load_mnist("keras")

    message = str(excinfo.value)
    assert str(cache) in message
    assert "Delete" in message


def test_keras_source_download_validated(keras_home, keras_mnist_module, monkeypatch):
    arrays = make_arrays()
    downloaded = ((arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"]))
    monkeypatch.setattr(keras_mnist_module, "load_data", lambda: downloaded)
    assert_arrays_equal(load_mnist("keras"), arrays)

    bad = ((arrays["x_train"], arrays["y_train"][:2]), (arrays["x_test"], arrays["y_test"]))
    monkeypatch.setattr(keras_mnist_module, "load_data", lambda: bad)
    with pytest.raises(DataError, match="found 5 images and 2 labels"):
        load_mnist("keras")
