"""Command-line plumbing shared by the scripts: option types, logging, seeding and exit codes."""

import argparse
import logging
import os
import sys

from .data import DataError
from .outputs import OutputError

log = logging.getLogger("sparseae")


def open_unit_interval(text):
    """Parse a float strictly between 0 and 1 (a target sparsity p)."""
    value = _parse_float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside the open interval (0, 1)")
    return value


def non_negative_float(text):
    """Parse a float >= 0."""
    value = _parse_float(text)
    if value < 0.0:
        raise argparse.ArgumentTypeError(f"{text} is negative; expected a value >= 0")
    return value


def positive_float(text):
    """Parse a float > 0."""
    value = _parse_float(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"{text} is not positive; expected a value > 0")
    return value


def positive_int(text):
    """Parse an integer >= 1."""
    value = _parse_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not positive; expected an integer >= 1")
    return value


def non_negative_int(text):
    """Parse an integer >= 0."""
    value = _parse_int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative; expected an integer >= 0")
    return value


def _parse_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _parse_int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults in --help and keep the description's line breaks."""


def configure_logging(verbose=False):
    """Send progress lines to stderr with timestamps; quiet TensorFlow's C++ start-up chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def set_seed(seed):
    """Seed Python, numpy and TensorFlow and ask TensorFlow for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run(main):
    """Call main() and turn expected failures into one line on stderr and an exit status.

    Bad data or an unusable output directory exit with status 1, and Ctrl-C
    exits with 130 as shells expect after SIGINT, without a traceback.
    """
    from .autoencoder import NonFiniteLossError

    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted; files already written are complete, none is half-written",
              file=sys.stderr)
        return 130
    except (DataError, OutputError, NonFiniteLossError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
