"""Command-line plumbing shared by the scripts: option types, logging, seeding and exit codes."""

import argparse
import logging
import sys
from pathlib import Path

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


MAX_SEED = 2**32 - 1  # numpy's default_rng and Keras' set_random_seed accept 0 to 2**32 - 1


def seed_value(text):
    """Parse a random seed, an integer from 0 to 2**32 - 1."""
    value = _parse_int(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is outside 0 to {MAX_SEED}")
    return value


def apply_preset(args, preset, argv):
    """Set each preset value on args unless its option was given on the command line."""
    given_options = {arg.split("=")[0] for arg in (argv if argv is not None else sys.argv[1:])}
    for key, value in preset.items():
        if f"--{key.replace('_', '-')}" not in given_options:
            setattr(args, key, value)


def unique(values):
    """Return values without repeats, in their first order."""
    return list(dict.fromkeys(values))


def mnist_source(text):
    """Parse --data: 'keras' or the path of an existing file or directory.

    Only the existence of the path is checked here, so that a typo exits with
    status 2 like any other invalid option. load_mnist() validates the content
    later and raises DataError for a damaged or wrong file.
    """
    if text == "keras" or Path(text).exists():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither 'keras' nor an existing file or directory; expected a "
        "directory of MNIST IDX files, a keras-style mnist.npz, or 'keras'")


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
    """Show defaults in --help and keep the description's line breaks.

    Options whose default is None or False explain their default in their
    own help text, so "(default: None)" is not appended to them.
    """

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def configure_logging(verbose=False):
    """Send progress lines to stderr with timestamps and hide TensorFlow's retracing warnings."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # Keras warns when it retraces a training function for each new model;
    # the scripts build new models on purpose, one per seed.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def set_seed(seed):
    """Seed Python, numpy and TensorFlow and ask TensorFlow for deterministic kernels."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def run(main):
    """Call main() and turn expected failures into one line on stderr and an exit status.

    Bad data, an unusable output directory or a diverging training run exit
    with status 1, and Ctrl-C exits with 130 as shells expect after SIGINT,
    without a traceback.
    """
    try:
        return main()
    except KeyboardInterrupt:
        print("interrupted; files already written are complete, none is half-written",
              file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, _reported_errors()):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1


def _reported_errors():
    """Return the exception types that run() reports in one line with exit status 1.

    NonFiniteLossError is included only once sparseae.autoencoder has been
    imported, because importing it here would load TensorFlow, whose start-up
    messages on stderr (not silenced by TF_CPP_MIN_LOG_LEVEL in 2.21) would
    precede an option or data error. Until then nothing can raise it.
    """
    errors = [DataError, OutputError]
    autoencoder = sys.modules.get("sparseae.autoencoder")
    if autoencoder is not None:
        errors.append(autoencoder.NonFiniteLossError)
    return tuple(errors)
