"""Load MNIST from IDX files, from a keras-style mnist.npz, or through Keras.

Every loader returns the layout of keras.datasets.mnist.load_data():
((x_train, y_train), (x_test, y_test)) with uint8 images of shape (N, 28, 28)
and uint8 labels of shape (N,). Anything that is not complete, well-formed
MNIST raises DataError, so no caller ever receives partial or placeholder data.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "mnist"

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SIDE = 28
NUM_CLASSES = 10

_HEADER_SIZE = {IMAGE_MAGIC: 16, LABEL_MAGIC: 8}
_KIND = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_CHECKSUM_FILE = "SHA256SUMS"

# Per socket operation, so a stalled download fails instead of hanging. A
# server that keeps trickling bytes can still make the whole download slower.
DOWNLOAD_TIMEOUT_S = 30

# Base names of the four MNIST files. _candidate_names() adds the spellings
# with a .gz suffix and with ".idx" in place of "-idx".
_IDX_STEMS = {
    "train images": "train-images-idx3-ubyte",
    "train labels": "train-labels-idx1-ubyte",
    "test images": "t10k-images-idx3-ubyte",
    "test labels": "t10k-labels-idx1-ubyte",
}

_FIX_HINT = (
    "Point --data at a directory with the four MNIST IDX files "
    "(for example --data data/mnist), at a keras-style mnist.npz "
    "(--data path/to/mnist.npz), or use --data keras."
)


class DataError(Exception):
    """Invalid, missing or unreadable MNIST data. The message names the path and the fix."""


def _candidate_names(stem: str) -> list[str]:
    """Return the file names tried for one IDX file, in order of preference."""
    dotted = stem.replace("-idx", ".idx")
    return [f"{stem}.gz", stem, f"{dotted}.gz", dotted]


def _display_path(path: Path) -> str:
    """Return the path relative to the repository when it lies inside it."""
    try:
        return Path(path).resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _restore_hint(path: Path) -> str:
    """Suggest how to get an intact copy of a damaged file."""
    try:
        Path(path).resolve().relative_to(DEFAULT_DATA_DIR)
    except ValueError:
        return f"Replace it with an intact copy. {_FIX_HINT}"
    return "Restore the shipped files with `git checkout data/mnist`."


def _read_bytes(path: Path) -> bytes:
    """Read a whole file, turning OS errors into DataError."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"MNIST file not found: {path}. {_FIX_HINT}") from None
    except OSError as exc:
        raise DataError(f"Reading {path} failed: {exc}. {_FIX_HINT}") from exc


def _looks_like_html(data: bytes) -> bool:
    # Only the start matters, and stripping a 47 MB payload would copy it.
    return data[:1024].lstrip().startswith(b"<")


def _html_error(path: Path, data: bytes, expected: str) -> DataError:
    preview = data[:1024].lstrip()[:40].decode("ascii", errors="replace")
    return DataError(
        f"{path} looks like an HTML page (for example a failed download), not "
        f"{expected}. Expected {expected}, found content starting with {preview!r}. "
        f"{_restore_hint(path)}"
    )


def _decompress(path: Path, raw: bytes) -> bytes:
    """Return the IDX bytes of a file, gunzipping it when it starts with the gzip magic."""
    if not raw.startswith(_GZIP_MAGIC):
        return raw

    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        problem = "is truncated (cut off before its end-of-stream marker)"
        detail = exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        problem = "is corrupt"
        detail = exc
    raise DataError(
        f"Decompressing {path} failed because the gzip stream {problem}. Expected a "
        f"complete gzip file, found {len(raw)} bytes that fail with: {detail}. "
        f"{_restore_hint(path)}"
    )


def _check_magic(path: Path, data: bytes, expected_magic: int | None) -> int:
    """Return the file's magic number, raising DataError unless it is an MNIST one."""
    if expected_magic is None:
        expected = "0x00000803 (images) or 0x00000801 (labels)"
    else:
        expected = f"0x{expected_magic:08x} ({_KIND[expected_magic]})"

    if len(data) < 4:
        raise DataError(
            f"{path} is truncated. Expected an IDX header starting with magic "
            f"number {expected}, found only {len(data)} bytes. {_restore_hint(path)}"
        )

    (magic,) = struct.unpack(">I", data[:4])
    (swapped,) = struct.unpack("<I", data[:4])
    if magic not in _KIND and swapped in _KIND:
        raise DataError(
            f"{path} has an IDX header in the wrong byte order. Expected the "
            f"big-endian magic number {expected}, found bytes {data[:4].hex(' ')}, "
            f"which is 0x{swapped:08x} ({_KIND[swapped]}) in little-endian order. "
            f"Rewrite the header in big-endian order, as IDX requires. {_restore_hint(path)}"
        )
    if magic not in _KIND:
        raise DataError(
            f"{path} is not an MNIST IDX file. Expected magic number {expected}, "
            f"found 0x{magic:08x}. {_restore_hint(path)}"
        )
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path} contains {_KIND[magic]}, not {_KIND[expected_magic]}. "
            f"Expected magic number {expected}, found 0x{magic:08x}. "
            "Check that the files are not swapped or renamed."
        )
    return magic


def _parse_idx(path: Path, data: bytes, expected_magic: int | None) -> np.ndarray:
    """Parse decompressed IDX bytes into a validated uint8 array."""
    if _looks_like_html(data):
        raise _html_error(path, data, "IDX data")

    magic = _check_magic(path, data, expected_magic)
    kind = _KIND[magic]
    header_size = _HEADER_SIZE[magic]
    if len(data) < header_size:
        raise DataError(
            f"{path} has a truncated header. Expected {header_size} header bytes "
            f"for IDX {kind}, found {len(data)}. {_restore_hint(path)}"
        )

    dims = struct.unpack(f">{(header_size - 4) // 4}I", data[4:header_size])
    count = dims[0]
    if magic == IMAGE_MAGIC and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(
            f"{path} has images of the wrong size. Expected {IMAGE_SIDE}x{IMAGE_SIDE}, "
            f"found {dims[1]}x{dims[2]}. {_restore_hint(path)}"
        )

    item_size = IMAGE_SIDE * IMAGE_SIDE if magic == IMAGE_MAGIC else 1
    expected_bytes = count * item_size
    payload_bytes = len(data) - header_size
    if payload_bytes < expected_bytes:
        raise DataError(
            f"{path} is truncated. Its header promises {count} {kind} "
            f"({expected_bytes} payload bytes), but the payload has {payload_bytes} "
            f"bytes ({payload_bytes // item_size} complete {kind}). {_restore_hint(path)}"
        )
    if payload_bytes > expected_bytes:
        raise DataError(
            f"{path} has {payload_bytes - expected_bytes} extra bytes after its data. "
            f"Expected {expected_bytes} payload bytes for the {count} {kind} "
            f"in its header, found {payload_bytes}. {_restore_hint(path)}"
        )

    # copy() so that callers get a writable array that does not pin the file bytes.
    array = np.frombuffer(data, dtype=np.uint8, offset=header_size).copy()
    if magic == IMAGE_MAGIC:
        return array.reshape(count, IMAGE_SIDE, IMAGE_SIDE)

    _check_label_range(path, array)
    return array


def _check_label_range(origin: Path, labels: np.ndarray) -> None:
    invalid = np.flatnonzero(labels >= NUM_CLASSES)
    if invalid.size:
        first = int(invalid[0])
        raise DataError(
            f"{origin} has invalid labels. Expected digits 0..{NUM_CLASSES - 1}, found "
            f"{invalid.size} of {labels.size} labels outside that range, the first "
            f"being {int(labels[first])} at index {first}. {_restore_hint(origin)}"
        )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one MNIST IDX file, gzip-compressed or raw, as a uint8 array.

    Gzip is detected by its 1f 8b magic bytes, not by the file name. Images
    come back as (N, 28, 28), labels as (N,). Raises DataError on any problem.
    """
    return _read_idx(Path(path), expected_magic=None)


def _read_idx(path: Path, expected_magic: int | None) -> np.ndarray:
    raw = _read_bytes(path)
    if not raw:
        raise DataError(
            f"{path} is empty (0 bytes). Expected an MNIST IDX file, gzip-compressed "
            f"or raw. {_restore_hint(path)}"
        )

    data = _decompress(path, raw)
    if not data:
        raise DataError(
            f"{path} decompresses to 0 bytes. Expected gzip-compressed MNIST IDX "
            f"data. {_restore_hint(path)}"
        )
    return _parse_idx(path, data, expected_magic)


def _read_checksums(directory: Path) -> dict[str, str]:
    """Return {file name: SHA-256 hex digest} from the directory's SHA256SUMS, if any."""
    checksum_path = directory / _CHECKSUM_FILE
    if not checksum_path.is_file():
        return {}

    try:
        lines = checksum_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Reading {checksum_path} failed: {exc}. {_restore_hint(checksum_path)}") from exc

    digests = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        # sha256sum writes "<digest>  <name>", or "<digest> *<name>" in binary mode.
        digest, _, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        if len(digest) != 64 or not name or any(c not in "0123456789abcdefABCDEF" for c in digest):
            raise DataError(
                f"{checksum_path} line {number} is malformed. Expected "
                f"'<64 hex digits>  <file name>' as sha256sum writes it, found {line!r}. "
                f"{_restore_hint(checksum_path)}"
            )
        digests[name] = digest.lower()
    return digests


def _verify_checksum(path: Path, expected: str) -> None:
    try:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise DataError(f"Reading {path} failed: {exc}. {_FIX_HINT}") from exc
    if found != expected:
        raise DataError(
            f"{path} failed its SHA-256 check against {path.parent / _CHECKSUM_FILE}. "
            f"Expected {expected}, found {found}. The file is damaged or was replaced. "
            f"{_restore_hint(path)}"
        )


def _all_candidate_names() -> str:
    return "; ".join(", ".join(_candidate_names(stem)) for stem in _IDX_STEMS.values())


def _find_idx_files(directory: Path) -> dict[str, Path]:
    """Return the path used for each of the four files, raising DataError if any is missing."""
    if not directory.is_dir():
        raise DataError(
            f"MNIST data directory not found: {directory}. Looked there for "
            f"{_all_candidate_names()}. {_FIX_HINT}"
        )

    found = {}
    missing = []
    for role, stem in _IDX_STEMS.items():
        names = _candidate_names(stem)
        path = next((directory / name for name in names if (directory / name).is_file()), None)
        if path is None:
            missing.append(f"{role} ({', '.join(names)})")
        else:
            found[role] = path
    if missing:
        raise DataError(
            f"MNIST IDX files missing in {directory}. Looked for {'; '.join(missing)}. "
            f"{_FIX_HINT}"
        )
    return found


def _check_split(origin: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Raise DataError unless images and labels form a non-empty, matching split."""
    if len(images) != len(labels):
        raise DataError(
            f"{origin}: the {split} images and labels differ in count. Expected one "
            f"label per image, found {len(images)} images and {len(labels)} labels. "
            f"{_restore_hint(origin)}"
        )
    if len(images) == 0:
        raise DataError(
            f"{origin}: the {split} split is empty. Expected at least one image, "
            f"found 0. {_restore_hint(origin)}"
        )


def _load_idx_dir(directory: Path):
    paths = _find_idx_files(directory)

    # Verify before parsing, so a damaged file is reported as damaged rather
    # than by whichever parse error it happens to trigger.
    checksums = _read_checksums(directory)
    for path in paths.values():
        if path.name in checksums:
            _verify_checksum(path, checksums[path.name])

    arrays = {}
    for role, path in paths.items():
        expected_magic = IMAGE_MAGIC if role.endswith("images") else LABEL_MAGIC
        arrays[role] = _read_idx(path, expected_magic)

    for split in ("train", "test"):
        images, labels = arrays[f"{split} images"], arrays[f"{split} labels"]
        if len(images) != len(labels):
            raise DataError(
                f"MNIST {split} files in {directory} differ in count. Expected one label "
                f"per image, found {len(images)} images in {paths[f'{split} images'].name} "
                f"and {len(labels)} labels in {paths[f'{split} labels'].name}. "
                f"{_restore_hint(directory)}"
            )
        _check_split(directory, split, images, labels)

    return (
        (arrays["train images"], arrays["train labels"]),
        (arrays["test images"], arrays["test labels"]),
    )


def _check_npz_arrays(origin: Path, arrays: dict[str, np.ndarray]):
    """Validate keras-style MNIST arrays and return them in load_data() layout."""
    for key, array in arrays.items():
        is_images = key.startswith("x_")
        if is_images:
            shape_ok = array.ndim == 3 and array.shape[1:] == (IMAGE_SIDE, IMAGE_SIDE)
            expected_shape = f"(N, {IMAGE_SIDE}, {IMAGE_SIDE})"
        else:
            shape_ok = array.ndim == 1
            expected_shape = "(N,)"
        if not shape_ok:
            raise DataError(
                f"{origin}: array {key} has the wrong shape. Expected {expected_shape}, "
                f"found {array.shape}. {_restore_hint(origin)}"
            )
        if array.dtype != np.uint8:
            raise DataError(
                f"{origin}: array {key} has the wrong dtype. Expected uint8, "
                f"found {array.dtype}. {_restore_hint(origin)}"
            )

    for split in ("train", "test"):
        _check_split(origin, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
        _check_label_range(origin, arrays[f"y_{split}"])

    return (
        (arrays["x_train"], arrays["y_train"]),
        (arrays["x_test"], arrays["y_test"]),
    )


def _load_npz(path: Path):
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise DataError(f"Reading {path} failed: {exc}. {_FIX_HINT}") from exc

    if not head:
        raise DataError(
            f"{path} is empty (0 bytes). Expected a keras-style mnist.npz. {_restore_hint(path)}"
        )
    if _looks_like_html(head):
        raise _html_error(path, head, "a keras-style mnist.npz")
    if not head.startswith(_ZIP_MAGICS):
        advice = _FIX_HINT
        if head.startswith(_GZIP_MAGIC) or head[:4] in (b"\x00\x00\x08\x03", b"\x00\x00\x08\x01"):
            found = "what looks like a single IDX file"
            advice = "Point --data at the directory that contains all four IDX files instead."
        elif head.startswith(_NPY_MAGIC):
            found = "a single .npy array"
        else:
            found = f"a file starting with bytes {head[:4].hex(' ')}"
        raise DataError(
            f"{path} is not a zip archive, so it cannot be a keras-style mnist.npz. "
            f"Expected a zip file with arrays {', '.join(_NPZ_KEYS)}, found {found}. "
            f"{advice}"
        )

    # A truncated or damaged archive can fail when opened or only when a
    # member is decompressed, with any of these exception types.
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in _NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path} is missing arrays {', '.join(missing)}. Expected keys "
                    f"{', '.join(_NPZ_KEYS)}, found {', '.join(archive.files) or 'none'}. "
                    f"{_restore_hint(path)}"
                )
            arrays = {key: archive[key] for key in _NPZ_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(
            f"{path} is truncated or corrupt and cannot be read as an npz archive: "
            f"{type(exc).__name__}: {exc}. Expected a complete keras-style mnist.npz. "
            f"{_restore_hint(path)}"
        ) from exc

    return _check_npz_arrays(path, arrays)


def keras_cache_paths() -> list[Path]:
    """Return where keras.datasets.mnist.load_data() caches mnist.npz, most likely first.

    Mirrors Keras 3.15 (keras/src/backend/config.py and keras/src/utils/file_utils.py):
    the home is $KERAS_HOME, else ~/.keras (or /tmp/.keras when ~ is not
    writable), and get_file() falls back to /tmp/.keras when that home is not
    writable. NOTE: Keras reads KERAS_HOME once, when it is imported, while
    this function reads it on every call.
    """
    if "KERAS_HOME" in os.environ:
        home = Path(os.environ["KERAS_HOME"]).expanduser()
    else:
        user_home = Path("~").expanduser()
        base = user_home if os.access(user_home, os.W_OK) else Path("/tmp")
        home = base / ".keras"

    paths = [home / "datasets" / "mnist.npz"]
    if not os.access(home, os.W_OK):
        tmp = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
        paths.append(tmp / ".keras" / "datasets" / "mnist.npz")
    return paths


def _load_keras():
    cache_paths = keras_cache_paths()
    for cache_path in cache_paths:
        if cache_path.is_file():
            try:
                return _load_npz(cache_path)
            except DataError as exc:
                raise DataError(
                    f"{exc} Delete {cache_path} so that --data keras downloads it again."
                ) from exc

    tried = (
        f"the Keras cache ({', '.join(str(p) for p in cache_paths)}, not present) "
        "and a download through keras.datasets.mnist.load_data()"
    )
    local_hint = "Use local files instead: --data data/mnist or --data path/to/mnist.npz."
    try:
        import keras
    except ImportError as exc:
        raise DataError(f"Loading MNIST through Keras failed: {exc}. {local_hint}") from exc

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:
        # Keras' get_file() re-raises network failures as a bare Exception.
        raise DataError(
            f"Loading MNIST through Keras failed. Tried {tried}. The download failed "
            f"with {type(exc).__name__}: {exc}. {local_hint}"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous_timeout)

    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _check_npz_arrays(Path("keras.datasets.mnist.load_data()"), arrays)


def _unknown_source_error(source) -> DataError:
    return DataError(
        f"MNIST source not found: {str(source)!r} is neither 'keras' nor an existing "
        f"file or directory. Accepted sources: a directory with the four MNIST IDX "
        f"files, gzip-compressed or raw ({_all_candidate_names()}), a keras-style "
        f"mnist.npz file, or 'keras' for Keras' own cache and download. {_FIX_HINT}"
    )


def load_mnist(source: str | os.PathLike | None = None):
    """Load MNIST as ((x_train, y_train), (x_test, y_test)) uint8 arrays.

    source is None for DEFAULT_DATA_DIR, "keras" for Keras' cache or download,
    a directory of IDX files, or a keras-style mnist.npz. The string "keras"
    wins over a directory of that name; pass "./keras" to mean the directory.
    Raises DataError on any missing or invalid data.
    """
    if source is None:
        return _load_idx_dir(DEFAULT_DATA_DIR)
    if isinstance(source, str) and source == "keras":
        return _load_keras()

    path = Path(source)
    if path.is_dir():
        return _load_idx_dir(path)
    if path.is_file():
        return _load_npz(path)
    if path.exists():
        raise DataError(
            f"{path} is neither a regular file nor a directory. Expected a directory "
            f"of MNIST IDX files or a keras-style mnist.npz. {_FIX_HINT}"
        )
    raise _unknown_source_error(source)


def flatten_images(images):
    """Turn uint8 (N, 28, 28) images into float32 (N, 784) rows in [0, 1]."""
    return images.reshape(len(images), -1).astype("float32") / 255.0


def describe_source(source: str | os.PathLike | None) -> str:
    """Return a short name of a load_mnist() source for logs and results."""
    if source is None:
        return f"{_display_path(DEFAULT_DATA_DIR)} (IDX)"
    if isinstance(source, str) and source == "keras":
        return "keras.datasets.mnist"

    path = Path(source)
    kind = "npz" if path.is_file() or path.suffix == ".npz" else "IDX"
    return f"{_display_path(path)} ({kind})"
