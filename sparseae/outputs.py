"""Output files that are either complete or absent: atomic writes and early directory checks."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


class OutputError(Exception):
    """Raised when the output directory cannot be used."""


def prepare_output_dir(path):
    """Create the output directory if needed and check that files can be written there.

    Runs before any training, so that a bad --out fails in a second rather
    than after minutes of work.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path {path} exists and is not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise OutputError(
            f"cannot write to output directory {path}: {error.strerror or error}; "
            "choose a writable --out"
        ) from error
    return path


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Open a temporary file beside path and rename it onto path only if the block succeeds.

    An interrupted or failed write leaves the previous file (or none), never
    a truncated one, because os.replace is atomic on POSIX and Windows.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates the file as 0600; give it the mode open() would.
        os.chmod(tmp_name, 0o666 & ~_current_umask())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _current_umask():
    """Return the process umask (reading it requires setting it, so set it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, data):
    """Write data as indented JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
