"""Semi-supervised MNIST: does sparse autoencoder pretraining help with 1000 labels?

With 100 labelled images per digit, compare two 784-200-10 networks (sigmoid
hidden layer, softmax output) trained with the same optimizer, learning
rate, batch size and epochs on the same labels:

  baseline          random initial weights;
  fine-tuned        hidden layer from a sparse autoencoder (p = 0.1) trained
                    on the images without their labels, output layer from a
                    softmax trained on the autoencoder's 200-d codes; the
                    stacked network is then fine-tuned.

The softmax on the codes, before fine-tuning, is reported too. Every seed
redraws the labelled set and all initial weights. The script reports the mean
and standard deviation over seeds, and the per-seed gain over the baseline.

    python sparseae_semiSupervisedLearning.py                  # 5 seeds, about 2 minutes on 2 cores
    python sparseae_semiSupervisedLearning.py --eval-split test
    python sparseae_semiSupervisedLearning.py --labels-per-class 10 30 100 300
    python sparseae_semiSupervisedLearning.py --pretrain-on labelled unlabelled
"""

import argparse
import hashlib
import logging
import sys

import numpy as np

from sparseae import cli

log = logging.getLogger("sparseae")

# ---------------------------------------------------------------------------
# Configuration: every value here can be overridden on the command line.
# The classifier settings are the same for the baseline and the fine-tuned
# network. The README describes how they were chosen on a validation split.
# ---------------------------------------------------------------------------

CONFIG = {
    "labels_per_class": [100],  # one run per value; several values draw the label-budget curve
    "seeds": 5,  # number of repetitions, seeds seed, seed+1, ...
    "seed": 0,
    "eval_split": None,  # "rest", "test" or "validation"; see --eval-split
    "pretrain_on": ["labelled"],  # images the autoencoder trains on: "labelled" and/or "unlabelled"
    # Sparse autoencoder
    "rho": 0.1,
    "beta": 3.0,
    "weight_decay": 1e-3,  # lambda of the autoencoder
    "hidden": 200,
    "ae_epochs": 400,  # on the labelled images
    "ae_unlabelled_epochs": 15,  # on the roughly 59,000 unlabelled images
    "ae_batch_size": 64,
    "ae_learning_rate": 5e-3,
    # Softmax layer on the 200-d codes
    "softmax_epochs": 100,
    "softmax_learning_rate": 1e-2,
    "softmax_weight_decay": 1e-4,
    # Baseline and fine-tuning: identical settings for both networks
    "epochs": 50,
    "batch_size": 32,
    "learning_rate": 3e-4,
    "classifier_weight_decay": 1e-4,
    "data": None,
    "out": "figures",
}

# Sizes for a smoke run that exercises every step in seconds.
QUICK = {
    "labels_per_class": [10],
    "seeds": 2,
    "ae_epochs": 3,
    "ae_unlabelled_epochs": 1,
    "softmax_epochs": 3,
    "epochs": 2,
}

# Share of each digit's labelled images held out by --eval-split validation,
# and the smallest budget for which that share is at least one image.
VALIDATION_FRACTION = 0.2
MIN_VALIDATION_BUDGET = 5
QUICK_OUT = "runs/quick"

EVAL_DESCRIPTIONS = {
    "rest": "the {n} training images outside the labelled set",
    "test": "the {n} test images",
    "validation": "{n} held-out labelled images (validation)",
}
SHORT_EVAL_DESCRIPTIONS = {"rest": "held-out training images", "test": "test images",
                           "validation": "held-out labelled images"}


def parse_args(argv=None):
    """Parse the command line into a namespace holding every CONFIG key."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=cli.HelpFormatter)
    add = parser.add_argument
    add("--labels-per-class", nargs="+", type=cli.positive_int,
        default=CONFIG["labels_per_class"],
        help="labelled images per digit; several values run a label-budget sweep")
    add("--seeds", type=cli.positive_int, default=CONFIG["seeds"],
        help="number of repetitions; each redraws the labelled set and all initial weights")
    add("--seed", type=cli.seed_value, default=CONFIG["seed"], help="first seed")
    add("--eval-split", choices=["rest", "test", "validation"], default=CONFIG["eval_split"],
        help="evaluation images: 'rest' = training images outside the labelled set, "
             "'test' = the 10,000 official test images, 'validation' = "
             f"{VALIDATION_FRACTION * 100:.0f}%% of each digit's labelled images, held out from all "
             "training, for choosing settings (default: rest, or test when pretraining on "
             "unlabelled images)")
    add("--pretrain-on", nargs="+", choices=["labelled", "unlabelled"],
        default=CONFIG["pretrain_on"],
        help="images the autoencoder trains on, without labels: the labelled set, or "
             "the training images outside it; give both to compare")
    add("--rho", "-p", type=cli.open_unit_interval, default=CONFIG["rho"],
        help="target sparsity p of the autoencoder, in (0, 1)")
    add("--beta", type=cli.non_negative_float, default=CONFIG["beta"],
        help="weight (>= 0) of the autoencoder's KL sparsity penalty")
    add("--weight-decay", "--lambda", dest="weight_decay", type=cli.non_negative_float,
        default=CONFIG["weight_decay"], help="autoencoder weight decay lambda (>= 0)")
    add("--hidden", type=cli.positive_int, default=CONFIG["hidden"], help="hidden units")
    add("--ae-epochs", type=cli.positive_int, default=CONFIG["ae_epochs"],
        help="autoencoder passes over the labelled images")
    add("--ae-unlabelled-epochs", type=cli.positive_int,
        default=CONFIG["ae_unlabelled_epochs"],
        help="autoencoder passes over the unlabelled images")
    add("--ae-batch-size", type=cli.positive_int, default=CONFIG["ae_batch_size"],
        help="images per autoencoder step")
    add("--ae-learning-rate", type=cli.positive_float, default=CONFIG["ae_learning_rate"],
        help="Adam step size for the autoencoder")
    add("--softmax-epochs", type=cli.positive_int, default=CONFIG["softmax_epochs"],
        help="passes over the labelled codes when training the softmax layer")
    add("--softmax-learning-rate", type=cli.positive_float,
        default=CONFIG["softmax_learning_rate"], help="Adam step size for the softmax layer")
    add("--softmax-weight-decay", type=cli.non_negative_float,
        default=CONFIG["softmax_weight_decay"], help="weight decay lambda of the softmax layer")
    add("--epochs", type=cli.positive_int, default=CONFIG["epochs"],
        help="passes over the labelled images for the baseline and for fine-tuning")
    add("--batch-size", type=cli.positive_int, default=CONFIG["batch_size"],
        help="images per step for the baseline and for fine-tuning")
    add("--learning-rate", type=cli.positive_float, default=CONFIG["learning_rate"],
        help="Adam step size for the baseline and for fine-tuning")
    add("--classifier-weight-decay", type=cli.non_negative_float,
        default=CONFIG["classifier_weight_decay"],
        help="weight decay lambda on both kernels of the baseline and fine-tuned networks")
    add("--quick", action="store_true",
        help="tiny smoke run: " + ", ".join(f"{k.replace('_', '-')}={v}" for k, v in QUICK.items())
        + ", out=" + QUICK_OUT + " (explicit options still win)")
    add("--data", type=cli.mnist_source, default=CONFIG["data"],
        help="MNIST source: a directory of IDX files, an mnist.npz, or 'keras' "
             "(default: data/mnist, shipped)")
    add("--out", default=CONFIG["out"],
        help="directory for the figures and the JSON results file")
    args = parser.parse_args(argv)

    if args.quick:
        # A smoke run must not overwrite the shipped results in figures/.
        cli.apply_preset(args, QUICK | {"out": QUICK_OUT}, argv)
    if args.seed + args.seeds - 1 > cli.MAX_SEED:
        parser.error(f"argument --seeds: seeds {args.seed} to {args.seed + args.seeds - 1} "
                     f"go past the largest seed, {cli.MAX_SEED}")
    args.pretrain_on = cli.unique(args.pretrain_on)

    if "unlabelled" in args.pretrain_on:
        # The unlabelled images are the rest of the training set, so only the
        # test images are unseen by every step.
        if args.eval_split == "rest":
            parser.error("argument --eval-split: 'rest' cannot be used with --pretrain-on "
                         "unlabelled, because the autoencoder trains on those images; use 'test'")
        args.eval_split = args.eval_split or "test"
    args.eval_split = args.eval_split or "rest"
    args.labels_per_class = sorted(set(args.labels_per_class))
    if args.eval_split == "validation" and args.labels_per_class[0] < MIN_VALIDATION_BUDGET:
        parser.error(f"argument --labels-per-class: --eval-split validation needs at least "
                     f"{MIN_VALIDATION_BUDGET} labels per digit to hold out "
                     f"{VALIDATION_FRACTION * 100:.0f}%, got {args.labels_per_class[0]}")
    return args, parser


def source_suffix(source):
    """Return the suffix that marks model names whose autoencoder trained on source."""
    return "" if source == "labelled" else " (AE on unlabelled)"


def model_names(pretrain_on):
    """Return the row names of the comparison, in table order."""
    names = ["baseline"]
    for source in pretrain_on:
        suffix = source_suffix(source)
        names += [f"softmax on codes{suffix}", f"fine-tuned{suffix}"]
    return names


def output_names(args):
    """Return the output file names; they carry the evaluation split so runs do not collide."""
    if len(args.labels_per_class) > 1:
        return {"results": f"results_label_budget_{args.eval_split}.json",
                "figure": f"label_budget_{args.eval_split}.png"}
    return {"results": f"results_semisupervised_{args.eval_split}.json",
            "figure": f"semisupervised_{args.eval_split}.png",
            "mosaic": "W1_semisupervised_{source}.png"}


def split_labelled(labelled, labels, seed):
    """Split labelled indices into (train, validation), VALIDATION_FRACTION of each digit held out."""
    rng = np.random.default_rng([seed, 3])
    held_out = []
    for digit in np.unique(labels[labelled]):
        of_digit = labelled[labels[labelled] == digit]
        count = max(1, int(round(VALIDATION_FRACTION * len(of_digit))))
        held_out.append(rng.choice(of_digit, size=count, replace=False))
    held_out = np.sort(np.concatenate(held_out))
    return np.setdiff1d(labelled, held_out), held_out


def run_seed(args, seed, per_class, x_train, y_train, x_test, y_test, mosaic_path):
    """Train every model of the comparison for one seed and label budget; return their scores."""
    from sparseae.autoencoder import SparseAutoencoder, TrainingConfig, train_autoencoder
    from sparseae.classifier import (
        build_network, build_softmax, complement, evaluate_classifier, probability_scores,
        select_labelled, train_classifier)
    from sparseae.mosaic import save_mosaic

    cli.set_seed(seed)
    labelled = select_labelled(y_train, per_class, seed)
    rest = complement(labelled, len(x_train))
    if args.eval_split == "validation":
        # Validation images stay out of every training step, the autoencoder's too.
        labelled, held_out = split_labelled(labelled, y_train, seed)
        x_eval, y_eval = x_train[held_out], y_train[held_out]
    elif args.eval_split == "rest":
        x_eval, y_eval = x_train[rest], y_train[rest]
    else:
        x_eval, y_eval = x_test, y_test
    x_labelled, y_labelled = x_train[labelled], y_train[labelled]
    classifier_settings = {"epochs": args.epochs, "batch_size": args.batch_size,
                           "learning_rate": args.learning_rate}
    scores = {}

    # Baseline: random initial weights, trained on the labels only.
    baseline = build_network(args.hidden, weight_decay=args.classifier_weight_decay,
                             name="baseline")
    train_classifier(baseline, x_labelled, y_labelled, **classifier_settings)
    scores["baseline"] = evaluate_classifier(baseline, x_eval, y_eval)
    log.info("seed %d, %d per digit: baseline accuracy %.4f", seed, per_class,
             scores["baseline"]["accuracy"])

    for source in args.pretrain_on:
        suffix = source_suffix(source)

        # Sparse autoencoder on images without their labels.
        x_pretrain = x_labelled if source == "labelled" else x_train[rest]
        epochs = args.ae_epochs if source == "labelled" else args.ae_unlabelled_epochs
        autoencoder = SparseAutoencoder(784, args.hidden, rho=args.rho, beta=args.beta,
                                        weight_decay=args.weight_decay, seed=seed)
        history = train_autoencoder(autoencoder, x_pretrain, TrainingConfig(
            epochs=epochs, batch_size=args.ae_batch_size, learning_rate=args.ae_learning_rate,
            seed=seed, log_every=0))
        log.info("seed %d: autoencoder on %d %s images, J=%.4f after %d epochs (%.1f s)",
                 seed, len(x_pretrain), source, history.epochs[-1]["total"], epochs,
                 history.seconds)
        if mosaic_path is not None:
            save_mosaic(str(mosaic_path).format(source=source),
                        autoencoder.W1.numpy()[:, :100].T, mode="weights")

        # Softmax layer on the 200-d codes of the labelled images.
        codes = autoencoder.encode(x_labelled).numpy()
        softmax = build_softmax(args.hidden, weight_decay=args.softmax_weight_decay)
        train_classifier(softmax, codes, y_labelled, epochs=args.softmax_epochs,
                         batch_size=args.batch_size, learning_rate=args.softmax_learning_rate)
        kernel, bias = softmax.get_layer("softmax").get_weights()
        separate = softmax.predict(autoencoder.encode(x_eval).numpy(), batch_size=4096,
                                   verbose=0)

        # Stack encoder and softmax; its layers start from those weights.
        pretrained = build_network(
            args.hidden, weights=(autoencoder.W1.numpy(), autoencoder.b1.numpy(), kernel, bias),
            weight_decay=args.classifier_weight_decay, name="pretrained")
        stacked = pretrained.predict(x_eval, batch_size=4096, verbose=0)
        scores[f"softmax on codes{suffix}"] = probability_scores(stacked, y_eval)
        scores[f"softmax on codes{suffix}"]["max_abs_difference_to_separate"] = float(
            np.max(np.abs(stacked - separate)))

        # Fine-tune with exactly the baseline's settings.
        train_classifier(pretrained, x_labelled, y_labelled, **classifier_settings)
        scores[f"fine-tuned{suffix}"] = evaluate_classifier(pretrained, x_eval, y_eval)
        log.info("seed %d, %d per digit: softmax on codes %.4f, fine-tuned %.4f%s", seed,
                 per_class, scores[f"softmax on codes{suffix}"]["accuracy"],
                 scores[f"fine-tuned{suffix}"]["accuracy"], suffix)

    return {"seed": seed, "labelled_indices_sha": hash_indices(labelled),
            "n_labelled": len(labelled), "n_eval": len(x_eval), "scores": scores}


def hash_indices(indices):
    """Return a short SHA-256 of an index array, to show which labelled set a seed drew."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def summarise(runs, names):
    """Return mean and sample standard deviation over seeds of each model's loss and accuracy."""
    summary = {}
    for name in names:
        row = {}
        for metric in ("loss", "accuracy"):
            values = np.array([run["scores"][name][metric] for run in runs])
            row[metric] = {"mean": float(values.mean()),
                           "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0}
        summary[name] = row
    gains = {}
    for name in names[1:]:
        if name.startswith("fine-tuned"):
            differences = [run["scores"][name]["accuracy"] - run["scores"]["baseline"]["accuracy"]
                           for run in runs]
            gains[name] = differences
    return summary, gains


def format_table(per_class, eval_description, summary, gains, runs):
    """Return one label budget's comparison as text: mean +- sd per model, then per-seed gains."""
    lines = [f"{per_class} labels per digit, evaluated on {eval_description}, "
             f"{len(runs)} seeds (mean +- sd)",
             f"{'model':<36} {'loss':>17} {'accuracy (%)':>17}"]
    for name, row in summary.items():
        loss, accuracy = row["loss"], row["accuracy"]
        lines.append(f"{name:<36} {loss['mean']:>8.4f} +- {loss['sd']:<6.4f}"
                     f" {100 * accuracy['mean']:>8.2f} +- {100 * accuracy['sd']:<5.2f}")
    seeds = ", ".join(str(run["seed"]) for run in runs)
    for name, differences in gains.items():
        points = ", ".join(f"{100 * value:+.2f}" for value in differences)
        lines.append(f"{name} - baseline, accuracy points per seed ({seeds}): {points}")
    return "\n".join(lines)


def main(argv=None):
    args, parser = parse_args(argv)
    cli.configure_logging()

    # Checks that need no training come first. TensorFlow is imported only
    # after them, and the output directory is created last, so a rejected
    # option or damaged data prints one line and leaves nothing in --out.
    from sparseae.data import NUM_CLASSES, describe_source, flatten_images, load_mnist
    from sparseae.outputs import prepare_output_dir, write_json

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data)

    # Reject a label budget that the rarest digit cannot fill.
    counts = np.bincount(y_train, minlength=NUM_CLASSES)
    rarest = int(np.argmin(counts))
    if max(args.labels_per_class) > counts[rarest]:
        parser.error(f"argument --labels-per-class: {max(args.labels_per_class)} is more than "
                     f"the {counts[rarest]} training images of digit {rarest}, the rarest "
                     f"digit; use a value from 1 to {counts[rarest]}")
    out_dir = prepare_output_dir(args.out)

    # -----------------------------------------------------------------------
    # Data: pixels scaled to [0, 1], one row per image.
    # -----------------------------------------------------------------------
    from sparseae.plots import plot_accuracy_bars, plot_label_budget

    x_train = flatten_images(x_train)
    x_test = flatten_images(x_test)
    names = model_names(args.pretrain_on)
    files = output_names(args)
    seeds = list(range(args.seed, args.seed + args.seeds))
    results = {"settings": {key: getattr(args, key) for key in CONFIG}
               | {"data": describe_source(args.data)},
               "complete": False, "budgets": []}

    # -----------------------------------------------------------------------
    # The comparison, for each label budget and seed.
    # -----------------------------------------------------------------------
    tables = []
    for per_class in args.labels_per_class:
        runs = []
        for seed in seeds:
            log.info("label budget %d per digit, seed %d (%d of %d)", per_class, seed,
                     seeds.index(seed) + 1, len(seeds))
            mosaic = files.get("mosaic") if seed == seeds[0] else None
            runs.append(run_seed(args, seed, per_class, x_train, y_train, x_test, y_test,
                                 out_dir / mosaic if mosaic else None))
        eval_description = EVAL_DESCRIPTIONS[args.eval_split].format(n=runs[0]["n_eval"])
        summary, gains = summarise(runs, names)
        results["budgets"].append({"labels_per_class": per_class, "eval_split": args.eval_split,
                                   "eval_description": eval_description, "summary": summary,
                                   "gain_over_baseline": gains, "runs": runs})
        write_json(out_dir / files["results"], results)
        tables.append(format_table(per_class, eval_description, summary, gains, runs))

    # -----------------------------------------------------------------------
    # Results: tables on stdout, the JSON file and the figures.
    # -----------------------------------------------------------------------
    if len(args.labels_per_class) > 1:
        # Softmax-on-codes curves sit close to the fine-tuned ones; the table has them.
        curves = {name: [[run["scores"][name]["accuracy"] for run in budget["runs"]]
                         for budget in results["budgets"]]
                  for name in names if not name.startswith("softmax")}
        plot_label_budget(out_dir / files["figure"], args.labels_per_class, curves,
                          f"accuracy on {SHORT_EVAL_DESCRIPTIONS[args.eval_split]}, "
                          f"{len(seeds)} seeds (mean +- sd)")
    else:
        budget = results["budgets"][0]
        plot_accuracy_bars(
            out_dir / files["figure"], names,
            [[run["scores"][name]["accuracy"] for run in budget["runs"]] for name in names],
            f"{budget['labels_per_class']} labels per digit, {len(seeds)} seeds\n"
            f"accuracy on {budget['eval_description']}")
    results["complete"] = True
    write_json(out_dir / files["results"], results)
    print("\n\n".join(tables))
    log.info("wrote %s and %s to %s", files["figure"], files["results"], out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
