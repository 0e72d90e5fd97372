"""The benchmark's markdown report: tables of the measurements, the targets and notes."""

import math

from benchmarks.measurements import (
    AUTOENCODER_VARIANTS, CLASSIFIER_VARIANTS, N_VISIBLE, PRODUCTS_PER_STEP, RHO, Series,
    ratio_series, step_flop)

# Targets, recorded in the report as met or missed and never asserted.
TARGET_MATMUL_FRACTION = 0.60
TARGET_CLASSIFIER_SPEEDUP = 2.0
TARGET_SCRIPT_SECONDS = {"sparseae_generic": 180.0, "sparseae_semiSupervisedLearning": 360.0}

# Above this share of the cores taken by other processes, the report notes a busy machine.
BUSY_FRACTION = 0.10

# Rates whose fastest round beats their slowest by more than this are listed in the notes.
SPREAD_RATIO = 1.3


def table(header, rows):
    """Return a markdown table, with any | inside a cell escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def verdict(value, target, unit_format):
    """Return "met" or "missed" with the margin, for a measured value that must reach target."""
    margin = value - target
    if margin >= 0:
        return f"met, by {unit_format(margin)}"
    return f"missed, by {unit_format(-margin)}"


def format_minutes(seconds):
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def ours_gflops(images_per_second, n_hidden):
    """Return the GFLOP/s of our step's matrix products from its images/s."""
    return Series([rate * step_flop(1, n_hidden) / 1e9 for rate in images_per_second.values])


def target_rows(autoencoder, batch_size, full_batch, n_hidden, classifier, scripts):
    """Return the target table rows and the names of the missed targets."""
    rows = []
    missed = []

    fraction = ratio_series(ours_gflops(autoencoder[batch_size]["ours"], n_hidden),
                            autoencoder[batch_size]["matmul"])
    status = verdict(fraction.median, TARGET_MATMUL_FRACTION,
                     lambda margin: f"{margin:.2f}")
    rows.append((f"our step / matmul rate >= {TARGET_MATMUL_FRACTION:.2f} at batch "
                 f"{batch_size}", fraction.describe(2), status))
    if status.startswith("missed"):
        missed.append("matmul")

    for size in (batch_size, full_batch):
        for peer in ("Keras Model.fit", "numpy"):
            speedup = ratio_series(autoencoder[size]["ours"], autoencoder[size][peer])
            status = verdict(speedup.median, 1.0, lambda margin: f"{margin:.2f}x")
            rows.append((f"our step faster than {peer} at batch {size}",
                         speedup.describe(2, "x"), status))
            if status.startswith("missed"):
                missed.append("peers")

    ours_name, default_name = list(CLASSIFIER_VARIANTS)
    speedup = ratio_series(classifier[ours_name]["call"], classifier[default_name]["call"])
    status = verdict(speedup.median, TARGET_CLASSIFIER_SPEEDUP, lambda margin: f"{margin:.2f}x")
    rows.append((f"classifier training >= {TARGET_CLASSIFIER_SPEEDUP:g}x the steps/s of "
                 "default Model.fit (whole calls)", speedup.describe(2, "x"), status))
    if status.startswith("missed"):
        missed.append("classifier")

    for name, limit in TARGET_SCRIPT_SECONDS.items():
        run = scripts.get(name)
        label = f"default {name}.py <= {format_minutes(limit)} min"
        if run is None:
            rows.append((label, "skipped", "not measured"))
        elif run.seconds is None or run.returncode != 0:
            rows.append((label, run.error, "not measured"))
        else:
            status = verdict(limit, run.seconds, lambda margin: f"{margin:.0f} s")
            rows.append((label, format_minutes(run.seconds), status))
            if status.startswith("missed"):
                missed.append("scripts")
    return rows, missed


# Findings from profiling these paths with py-spy 0.4 and the TensorFlow
# profiler (TensorFlow 2.21, Keras 3.15, 2 AMD EPYC cores). They are printed
# only for targets that a run misses, next to that run's numbers.
PROFILE_FINDINGS = {
    "matmul": (
        "Our step vs. the matmul rate: before build_train_epoch compiled the gradient and "
        "the Adam update with XLA (jit_compile=True), the TensorFlow profiler showed the "
        "five products taking about half of each step's thread time and dozens of small "
        "elementwise, reduction and Adam ops, each its own kernel, taking most of the rest. "
        "That version measured 0.54–0.58 of the matmul rate at batch 256 and 0.33 at batch "
        "64. Compiling the whole epoch loop with XLA instead ran about 5x slower. The "
        "profiler shows no per-op times inside XLA clusters, so finding what is left needs "
        "XLA's own dumps (TF_XLA_FLAGS=--xla_dump_to=DIR)."
    ),
    "peers": (
        "A peer outran our step: all three run the same five matrix products per step "
        "(oneDNN in TensorFlow, OpenBLAS in numpy) and differ in the elementwise work and "
        "per-step overhead, so where the products dominate, as at full batch, the ratio "
        "is near 1 and load from other processes can tip it. numpy's multithreaded "
        "OpenBLAS products slowed down several times over on this machine while other "
        "processes were busy, and ran near TensorFlow's speed while it was idle."
    ),
    "classifier": (
        "Classifier vs. default Model.fit: py-spy showed Model.fit building a new tf.data "
        "iterator every epoch (make_iterator) for about as long as the 32 training steps "
        "themselves. train_classifier now feeds one repeated dataset, so the iterator is "
        "built once per call. What remains is per-step op overhead inside the graph: a "
        "784-200-10 step at batch 32 is about 30 MFLOP (well under 1 ms at the matmul "
        "rate), but Keras runs loss, penalties, metrics and Adam as about a hundred small "
        "ops. TF op determinism, which the scripts enable for reproducibility, halved "
        "train_classifier's steady-state steps/s in a separate test, and it makes Keras "
        "3.15 turn jit_compile off. Without determinism, jit_compile=True raised "
        "steady-state steps/s by 1.1–2.2x in three rounds. Closing the gap would take a "
        "hand-written compiled training step like the autoencoder's, or XLA without op "
        "determinism."
    ),
    "scripts": (
        "A script ran over its time target: its wall time includes importing TensorFlow, "
        "loading MNIST and compiling each model's graphs, and it shares the cores with any "
        "other load on the machine (see the CPU share of other processes above)."
    ),
}


def render_report(*, command, started, machine, others_fraction, settings,
                  autoencoder, classifier, steps_per_epoch, scripts):
    """Return the whole report as markdown text.

    settings contains batch_sizes (default, full), n_hidden, repeats, images,
    classifier_images, classifier_batch_size and classifier_epochs.
    """
    batch_size, full_batch = settings["batch_sizes"]
    target_table, missed = target_rows(autoencoder, batch_size, full_batch,
                                       settings["n_hidden"], classifier, scripts)
    sections = [
        "# Training speed benchmarks\n\n"
        f"Written by `benchmarks/benchmark.py` on {started:%Y-%m-%d %H:%M} UTC with:\n\n"
        f"    {command}",
        machine_section(machine, others_fraction),
        method_section(settings, steps_per_epoch),
        autoencoder_sections(autoencoder, settings),
        classifier_section(classifier),
        scripts_section(scripts),
        "## Targets\n\nMeasured values are medians of per-round values, with the lowest "
        "and highest round in brackets.\n\n"
        + table(("target", "measured", "status"), target_table),
    ]
    notes = notes_section(others_fraction, missed, spread_rows(autoencoder, classifier))
    if notes:
        sections.append(notes)
    return "\n\n".join(sections) + "\n"


def machine_section(machine, others_fraction):
    share = ("unavailable" if others_fraction is None
             else f"{others_fraction:.0%} of all cores' time")
    rows = machine + [("CPU time taken by other processes during the run", share)]
    return "## Machine\n\n" + table(("item", "value"), rows)


def method_section(settings, steps_per_epoch):
    n_hidden = settings["n_hidden"]
    items = [
        f"Every rate below is the median over {settings['repeats']} interleaved rounds, with "
        "the lowest and highest round in brackets. A round measures every variant once, in "
        "alternating order, so load from other processes falls on all of them. Each ratio "
        "is the median of the per-round ratios.",
        f"Autoencoder: 784-{n_hidden}-784 with the cost and Adam settings of "
        f"sparseae_generic.CONFIG (rho={RHO}, beta, lambda, learning rate), "
        f"{settings['images']:,} MNIST training images per epoch, and one timed epoch per "
        "round after a warm-up epoch that traces and compiles. Each epoch includes the "
        "shuffle of its implementation.",
        f"FLOP counts only the matrix products: 2*m*k*n each, {PRODUCTS_PER_STEP} per step "
        f"of m images, so {step_flop(1, n_hidden):,} FLOP per image.",
        f"Classifier: 784-{n_hidden}-10, batch {settings['classifier_batch_size']}, "
        f"{settings['classifier_images']:,} labelled images ({steps_per_epoch} steps per "
        f"epoch), {settings['classifier_epochs']} epochs per call, Adam at "
        "sparseae_semiSupervisedLearning.CONFIG's learning rate, same initial weights.",
    ]
    return "## Method\n\n" + "\n".join(f"- {item}" for item in items)


def autoencoder_sections(autoencoder, settings):
    """Return sections 1 to 3: the matmul rate, our step, and our step against the peers."""
    batch_sizes = settings["batch_sizes"]
    n_hidden = settings["n_hidden"]

    matmul_rows = [
        (f"{size:,}", f"{PRODUCTS_PER_STEP * math.ceil(settings['images'] / size):,}",
         autoencoder[size]["matmul"].describe())
        for size in batch_sizes
    ]
    ours_rows = []
    for size in batch_sizes:
        gflops = ours_gflops(autoencoder[size]["ours"], n_hidden)
        ours_rows.append((f"{size:,}", autoencoder[size]["ours"].describe(0), gflops.describe(),
                          ratio_series(gflops, autoencoder[size]["matmul"]).describe(2)))
    peer_rows = []
    for size in batch_sizes:
        series = autoencoder[size]
        for name in AUTOENCODER_VARIANTS:
            ratio = ("1x" if name == "ours"
                     else ratio_series(series["ours"], series[name]).describe(2, "x"))
            peer_rows.append((f"{size:,}", name, series[name].describe(0), ratio))

    return "\n\n".join([
        "## 1. Matrix product rate",
        f"TensorFlow `tf.matmul` of (m x {N_VISIBLE}) @ ({N_VISIBLE} x {n_hidden}) float32 "
        "inside one `tf.function` loop with as many products as one training epoch.",
        table(("m (batch rows)", "products per loop", "GFLOP/s"), matmul_rows),
        "## 2. Autoencoder training step (ours)",
        "`build_train_epoch` with Adam, run per epoch exactly as `train_autoencoder` runs it "
        "(a `tf.gather` of a permutation below full batch, then one compiled epoch).",
        table(("batch", "images/s", "GFLOP/s", "ratio to matmul rate"), ours_rows),
        "## 3. Peers: the same cost, data and batch size",
        "- Keras Model.fit: KL term as an activity regularizer on the hidden Dense layer, "
        "weight decay as L2(lambda/2) kernel regularizers, loss = per-image sum of squared "
        "error averaged over the batch, default compile settings. Times run from epoch "
        "begin to epoch end, so fit's once-per-call setup is left out.\n"
        "- numpy: hand-written backpropagation and Adam (benchmarks/peers.py) in float32, "
        "with numpy's own BLAS and thread settings.",
        table(("batch", "implementation", "images/s", "ours / this"), peer_rows),
    ])


def classifier_section(classifier):
    ours_name, default_name = list(CLASSIFIER_VARIANTS)
    rows = [(name, classifier[name]["call"].describe(0), classifier[name]["steady"].describe(0),
             classifier[name]["first_epoch_s"].describe(2))
            for name in CLASSIFIER_VARIANTS]
    call_ratio = ratio_series(classifier[ours_name]["call"], classifier[default_name]["call"])
    steady_ratio = ratio_series(classifier[ours_name]["steady"],
                                classifier[default_name]["steady"])
    return "\n\n".join([
        "## 4. Classifier training",
        "`sparseae.classifier.train_classifier` (steps_per_execution = steps per epoch, "
        "one repeated dataset) against `Model.fit(x, y)` after `compile` with only the "
        "optimizer, loss and accuracy metric given. \"Whole call\" counts compile, "
        "tracing and data setup, as each call in the semi-supervised script pays them. "
        "\"After epoch 1\" counts epochs 2 and later only.",
        table(("setup", "steps/s, whole call", "steps/s, after epoch 1",
               "seconds before epoch 2"), rows),
        f"Ours / default: {call_ratio.describe(2, 'x')} for whole calls, "
        f"{steady_ratio.describe(2, 'x')} after epoch 1.",
    ])


def scripts_section(scripts):
    heading = "## 5. Whole scripts at their defaults"
    if not scripts:
        return heading + "\n\nSkipped (--skip-scripts)."

    rows = []
    for run in scripts.values():
        if run.seconds is None:
            rows.append((f"{run.name}.py", "–", "–", run.error))
            continue
        if run.returncode != 0:
            outcome = run.error
        elif not run.results_complete:
            outcome = "exited 0, but its results JSON is not marked complete"
        else:
            outcome = "ok"
        rows.append((f"{run.name}.py", format_minutes(run.seconds),
                     f"{run.peak_rss_mib:,.0f} MiB ({run.rss_source})", outcome))
    return "\n\n".join([
        heading,
        "Each ran as `python <script>.py --out <temporary directory>` in a subprocess.",
        table(("script", "wall time (m:ss)", "peak resident memory", "outcome"), rows),
    ])


def spread_rows(autoencoder, classifier):
    """Return (variant, fastest / slowest round) for every rate whose rounds differ by SPREAD_RATIO."""
    named = []
    for size, series_by_name in autoencoder.items():
        named += [(f"{name} at batch {size:,}", series)
                  for name, series in series_by_name.items()]
    named += [(f"{name}, whole call", rows["call"]) for name, rows in classifier.items()]
    return [(label, max(series.values) / min(series.values)) for label, series in named
            if max(series.values) > SPREAD_RATIO * min(series.values)]


def notes_section(others_fraction, missed, spread):
    """Return the notes on machine load, spread and missed targets, or "" when there are none."""
    notes = []
    busy = others_fraction is not None and others_fraction > BUSY_FRACTION
    if busy:
        notes.append(
            f"The machine was busy: other processes took {others_fraction:.0%} of all cores' "
            "time during the run, so absolute rates are lower and spread wider than on an "
            "idle machine. The per-round ratios are the numbers to compare.")
    if spread:
        listed = ", ".join(f"{label} {ratio:.2f}x" for label, ratio in spread)
        cause = ""
        if others_fraction is not None and not busy:
            cause = (" Other processes in this machine took little CPU time, so the cause "
                     "was not visible to this benchmark. A virtual machine's host or CPU "
                     "frequency changes are possible causes.")
        notes.append(
            f"Some rates differed widely between rounds (fastest / slowest round): {listed}. "
            "A target whose median sits near its limit can fall either side of it from one "
            "run to the next." + cause)
    notes += [PROFILE_FINDINGS[name] for name in dict.fromkeys(missed)]
    if not notes:
        return ""
    return "## Notes\n\n" + "\n".join(f"- {note}" for note in notes)
