"""Measure how fast the sparse autoencoder and the classifier train, and write a markdown report.

All measurements run in one process, in interleaved rounds: each round
measures every variant once, so a change in machine load hits all of them
alike. The report gives medians over rounds, and each ratio is the median of
the ratios within a round.

    python benchmarks/benchmark.py                  # everything, about 6 minutes on 2 idle cores
    python benchmarks/benchmark.py --skip-scripts   # without the two whole-script runs
    python benchmarks/benchmark.py --tiny --output /tmp/benchmarks.md   # smoke run
"""

import argparse
import datetime
import logging
import os
import shlex
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sparseae_generic  # noqa: E402
import sparseae_semiSupervisedLearning as semisupervised  # noqa: E402
from benchmarks.measurements import (  # noqa: E402
    CpuShare, describe_machine, measure_autoencoder, measure_classifier, run_script)
from benchmarks.report import TARGET_SCRIPT_SECONDS, render_report  # noqa: E402
from sparseae import cli  # noqa: E402
from sparseae.classifier import select_labelled  # noqa: E402
from sparseae.data import flatten_images, load_mnist  # noqa: E402
from sparseae.outputs import atomic_write  # noqa: E402

log = logging.getLogger("benchmarks")

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "benchmarks.md"

# Sizes for --tiny: every section runs, in seconds, and the scripts are skipped.
TINY = {"images": 512, "repeats": 1, "labels_per_class": 10, "classifier_epochs": 2}


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv=None):
    """Parse the command line; --tiny fills in small sizes that were not given explicitly."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=cli.HelpFormatter)
    parser.add_argument("--images", type=cli.positive_int, default=60000,
                        help="training images per autoencoder epoch; also the full-batch size")
    parser.add_argument("--batch-size", type=cli.positive_int,
                        default=sparseae_generic.CONFIG["batch_size"],
                        help="minibatch size of the autoencoder measurements")
    parser.add_argument("--repeats", type=cli.positive_int, default=7,
                        help="interleaved rounds; each times every variant once")
    parser.add_argument("--labels-per-class", type=cli.positive_int,
                        default=semisupervised.CONFIG["labels_per_class"][0],
                        help="labelled images per digit for the classifier measurements")
    parser.add_argument("--classifier-epochs", type=cli.positive_int,
                        default=semisupervised.CONFIG["epochs"],
                        help="epochs per classifier training call")
    parser.add_argument("--skip-scripts", action="store_true",
                        help="skip the two whole-script runs, which take about 4 minutes")
    parser.add_argument("--script-timeout", type=cli.positive_float, default=1800.0,
                        help="seconds after which a script run is stopped and reported as timed out")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="markdown report to write")
    parser.add_argument("--tiny", action="store_true",
                        help="smoke run: " + ", ".join(
                            f"--{key.replace('_', '-')} {value}" for key, value in TINY.items())
                        + ", --skip-scripts (explicit options still win)")
    args = parser.parse_args(argv)
    if args.output.is_dir():
        parser.error(f"argument --output: {args.output} is a directory; give a file name "
                     "such as docs/benchmarks.md")

    if args.tiny:
        cli.apply_preset(args, TINY, argv)
        args.skip_scripts = True
    args.batch_size = min(args.batch_size, args.images)
    return args


def describe_command(argv):
    """Return the command line that reproduces this run, with the interpreter relative to the repo."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(REPO_ROOT)
    except ValueError:
        pass
    return shlex.join([str(python), "benchmarks/benchmark.py", *argv])


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    cli.configure_logging()
    cli.set_seed(0)  # as the scripts do, so op determinism is on for every measurement
    started = datetime.datetime.now(datetime.timezone.utc)
    machine = describe_machine()
    cpu_share = CpuShare.start()

    (x_train, y_train), _ = load_mnist()
    if args.images > len(x_train):
        raise SystemExit(f"error: --images {args.images} is more than the {len(x_train)} "
                         "training images available; choose a smaller --images")
    x = flatten_images(x_train[: args.images])
    n_hidden = sparseae_generic.CONFIG["hidden"]
    batch_sizes = (args.batch_size, args.images)

    autoencoder = measure_autoencoder(x, batch_sizes, args.repeats, n_hidden)

    labelled = select_labelled(y_train, args.labels_per_class, seed=0)
    x_labelled = flatten_images(x_train[labelled])
    classifier, steps_per_epoch = measure_classifier(
        x_labelled, y_train[labelled], args.repeats, args.classifier_epochs)

    scripts = {}
    if not args.skip_scripts:
        for name in TARGET_SCRIPT_SECONDS:
            scripts[name] = run_script(name, args.script_timeout)

    report = render_report(
        command=describe_command(argv), started=started, machine=machine,
        others_fraction=cpu_share.others_fraction(),
        settings={"batch_sizes": batch_sizes, "n_hidden": n_hidden, "repeats": args.repeats,
                  "images": args.images,
                  "classifier_images": len(labelled),
                  "classifier_batch_size": semisupervised.CONFIG["batch_size"],
                  "classifier_epochs": args.classifier_epochs},
        autoencoder=autoencoder, classifier=classifier, steps_per_epoch=steps_per_epoch,
        scripts=scripts)

    output = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(output, "w") as handle:
        handle.write(report)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
