"""Sparse autoencoder on MNIST: what the hidden units learn at each target sparsity.

For each target sparsity p, train a 784-200-784 sigmoid autoencoder whose cost
is the mean squared reconstruction error, plus weight decay, plus beta times
the KL divergence between p and each hidden unit's mean activation over the
samples. Save, per p, three 10x10 mosaics: the input weights of the first 100
hidden units (W1_<p>.png), the first 100 training images (X_<p>.png) and their
reconstructions (X_hat_<p>.png). Then save a histogram of the hidden units'
mean activations per p and a summary of achieved sparsity and test error
against p, and print and save a table of the results.

    python sparseae_generic.py                 # defaults below, about 2 minutes on 2 cores
    python sparseae_generic.py --original      # the original 400 full-batch gradient steps
    python sparseae_generic.py --sparsities 0.05 --epochs 5 --out runs/quick
"""

import argparse
import logging
import sys

from sparseae import cli

log = logging.getLogger("sparseae")

# ---------------------------------------------------------------------------
# Configuration: every value here can be overridden on the command line.
# ---------------------------------------------------------------------------

CONFIG = {
    "sparsities": [0.01, 0.1, 0.5, 0.8],  # target mean activation p (rho), one run each
    "hidden": 200,  # hidden units
    "weight_decay": 1e-3,  # lambda
    "beta": 3.0,  # weight of the sparsity penalty
    "train_size": 60000,  # first N training images
    "epochs": 30,
    "batch_size": 256,  # 0 means full batch
    "optimizer": "adam",
    "learning_rate": 5e-3,
    "seed": 0,
    "data": None,  # None means the MNIST files shipped in data/mnist
    "out": "figures",
}

# The original experiment: 400 steps of plain gradient descent on the full
# batch of 6000 images. Kept for comparison, because it barely moves the
# weights away from their random start.
ORIGINAL_REGIME = {
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "batch_size": 0,
    "epochs": 400,
    "train_size": 6000,
}

DEAD_UNIT_THRESHOLD = 1e-3  # a hidden unit with rho_hat_j below this never activates
RESULTS_FILE = "results_generic.json"
HISTOGRAM_FILE = "p_hat_histograms.png"  # rho_hat_j of every hidden unit, one panel per p
SUMMARY_FILE = "sparsity_summary.png"  # achieved mean rho_hat and test error against p


def parse_args(argv=None):
    """Parse the command line into a namespace holding every CONFIG key."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=cli.HelpFormatter
    )

    # The model and its cost
    parser.add_argument("--sparsities", "-p", nargs="+", type=cli.open_unit_interval,
                        default=CONFIG["sparsities"],
                        help="target sparsities p, each in the open interval (0, 1)")
    parser.add_argument("--hidden", type=cli.positive_int, default=CONFIG["hidden"],
                        help="number of hidden units")
    parser.add_argument("--weight-decay", "--lambda", dest="weight_decay",
                        type=cli.non_negative_float, default=CONFIG["weight_decay"],
                        help="weight decay lambda (>= 0) on W1 and W2")
    parser.add_argument("--beta", type=cli.non_negative_float, default=CONFIG["beta"],
                        help="weight beta (>= 0) of the KL sparsity penalty")

    # Training
    parser.add_argument("--train-size", type=cli.positive_int, default=CONFIG["train_size"],
                        help="number of training images, taken from the start of the training set")
    parser.add_argument("--epochs", type=cli.positive_int, default=CONFIG["epochs"],
                        help="passes over the training images")
    parser.add_argument("--batch-size", type=cli.non_negative_int, default=CONFIG["batch_size"],
                        help="images per gradient step; 0 means the full training set")
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default=CONFIG["optimizer"],
                        help="adam, or sgd for plain gradient descent")
    parser.add_argument("--learning-rate", type=cli.positive_float,
                        default=CONFIG["learning_rate"], help="optimizer step size")
    parser.add_argument("--original", action="store_true",
                        help="use the original regime: " + ", ".join(
                            f"{key.replace('_', '-')}={value}"
                            for key, value in ORIGINAL_REGIME.items())
                        + " (explicit options still win)")

    # Data, outputs and logging
    parser.add_argument("--seed", type=cli.seed_value, default=CONFIG["seed"],
                        help="seed for the initial weights and the order of the samples")
    parser.add_argument("--data", type=cli.mnist_source, default=CONFIG["data"],
                        help="MNIST source: a directory of IDX files, an mnist.npz, or 'keras' "
                             "for Keras' download cache (default: data/mnist, shipped)")
    parser.add_argument("--out", default=CONFIG["out"],
                        help="directory for the PNG mosaics and " + RESULTS_FILE)
    parser.add_argument("--log-every", type=cli.non_negative_int, default=1,
                        help="epochs between progress lines; 0 for none")

    args = parser.parse_args(argv)
    if args.original:
        cli.apply_preset(args, ORIGINAL_REGIME, argv)
    args.sparsities = cli.unique(args.sparsities)
    return args, parser


def format_table(rows):
    """Return the per-p results as a fixed-width text table."""
    header = (f"{'p':>6} {'J':>9} {'recon':>9} {'weight':>8} {'sparsity':>9} "
              f"{'mean p_hat':>10} {'test recon':>10} {'dead':>5} {'seconds':>8}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['p']:>6g} {row['J']:>9.4f} {row['reconstruction']:>9.4f} "
            f"{row['weight_penalty']:>8.4f} {row['sparsity_penalty']:>9.4f} "
            f"{row['mean_rho_hat']:>10.4f} {row['test_reconstruction']:>10.4f} "
            f"{row['dead_units']:>5d} {row['train_seconds']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv=None):
    args, parser = parse_args(argv)
    cli.configure_logging()

    # Checks that need no training come first, so a typo costs seconds. The
    # output directory is created last, so a rejected option or damaged data
    # leaves nothing behind in --out.
    from sparseae.data import describe_source, flatten_images, load_mnist
    from sparseae.outputs import prepare_output_dir, write_json

    (x_train, _), (x_test, _) = load_mnist(args.data)
    if args.train_size > len(x_train):
        parser.error(f"argument --train-size: {args.train_size} is more than the "
                     f"{len(x_train)} training images available; use a value from 1 to "
                     f"{len(x_train)}")
    out_dir = prepare_output_dir(args.out)

    # -----------------------------------------------------------------------
    # Data: the first train_size images, pixels scaled to [0, 1].
    # -----------------------------------------------------------------------
    from sparseae.autoencoder import (
        SparseAutoencoder, TrainingConfig, evaluate_autoencoder, train_autoencoder)
    from sparseae.mosaic import save_mosaic
    from sparseae.plots import plot_rho_hat_histograms, plot_sparsity_summary

    cli.set_seed(args.seed)
    x_train = flatten_images(x_train[: args.train_size])
    x_test = flatten_images(x_test)
    log.info("data: %s, %d training and %d test images",
             describe_source(args.data), len(x_train), len(x_test))

    training = TrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
        learning_rate=args.learning_rate, seed=args.seed, log_every=args.log_every)
    results = {
        "settings": {key: getattr(args, key) for key in CONFIG} | {"data": describe_source(args.data)},
        "complete": False,
        "runs": [],
    }

    # -----------------------------------------------------------------------
    # One autoencoder per target sparsity p.
    # -----------------------------------------------------------------------
    for rho in args.sparsities:
        log.info("training p=%g: %d epochs, batch %s, %s at learning rate %g", rho,
                 args.epochs, args.batch_size or "full", args.optimizer, args.learning_rate)
        model = SparseAutoencoder(
            784, args.hidden, rho=rho, beta=args.beta,
            weight_decay=args.weight_decay, seed=args.seed)
        history = train_autoencoder(model, x_train, training)

        train_stats = evaluate_autoencoder(model, x_train)
        test_stats = evaluate_autoencoder(model, x_test)
        rho_hat = train_stats["rho_hat"]
        row = {
            "p": rho,
            "J": train_stats["total"],
            "reconstruction": train_stats["reconstruction"],
            "weight_penalty": train_stats["weight_penalty"],
            "sparsity_penalty": train_stats["sparsity_penalty"],
            "mean_rho_hat": float(rho_hat.mean()),
            "test_reconstruction": test_stats["reconstruction"],
            "dead_units": int((rho_hat < DEAD_UNIT_THRESHOLD).sum()),
            "train_seconds": history.seconds,
            "rho_hat": [float(value) for value in rho_hat],
            "epoch_costs": history.epochs,
        }

        # Mosaics: column j of W1 is hidden unit j's input weights.
        tag = f"{rho:g}"
        save_mosaic(out_dir / f"W1_{tag}.png", model.W1.numpy()[:, :100].T, mode="weights")
        save_mosaic(out_dir / f"X_{tag}.png", x_train[:100])
        save_mosaic(out_dir / f"X_hat_{tag}.png",
                    model.decode(model.encode(x_train[:100])).numpy())

        results["runs"].append(row)
        write_json(out_dir / RESULTS_FILE, results)
        log.info("p=%g done: J=%.4f, mean p_hat=%.4f, %d dead units, %.1f s", rho, row["J"],
                 row["mean_rho_hat"], row["dead_units"], row["train_seconds"])

    # -----------------------------------------------------------------------
    # Results: the table on stdout, everything in the JSON file.
    # -----------------------------------------------------------------------
    # Sparsity diagnostics: did the penalty make the hidden layer sparse?
    runs = results["runs"]
    plot_rho_hat_histograms(out_dir / HISTOGRAM_FILE, [row["p"] for row in runs],
                            [row["rho_hat"] for row in runs])
    plot_sparsity_summary(out_dir / SUMMARY_FILE, [row["p"] for row in runs],
                          [row["mean_rho_hat"] for row in runs],
                          [row["test_reconstruction"] for row in runs])

    results["complete"] = True
    write_json(out_dir / RESULTS_FILE, results)
    print(format_table(runs))
    log.info("wrote %d mosaics, %s, %s and %s to %s", 3 * len(runs), HISTOGRAM_FILE,
             SUMMARY_FILE, RESULTS_FILE, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
