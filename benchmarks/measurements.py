"""Measurements for the benchmark: machine facts, rates in interleaved rounds, script runs.

Every rate is measured once per round, and each round measures every
variant, so that a change in machine load hits all variants alike.
"""

import dataclasses
import json
import logging
import math
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import sparseae_generic
import sparseae_semiSupervisedLearning as semisupervised
from benchmarks.peers import EpochTimer, KerasSparseAutoencoder, NumpySparseAutoencoder
from sparseae.autoencoder import SparseAutoencoder, build_train_epoch, make_optimizer
from sparseae.classifier import build_network, train_classifier

log = logging.getLogger("benchmarks")

REPO_ROOT = Path(__file__).resolve().parent.parent
N_VISIBLE = 784
RHO = 0.1  # one of sparseae_generic's target sparsities; the cost per step does not depend on it

# One training step multiplies five (batch x 784) by (784 x 200) sized
# matrices: two in the forward pass and three in the backward pass.
PRODUCTS_PER_STEP = 5


# ---------------------------------------------------------------------------
# Machine
# ---------------------------------------------------------------------------


def cpu_model():
    """Return the CPU model name from /proc/cpuinfo, or platform's description elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def busy_cpu_seconds():
    """Return the CPU seconds all processes have spent busy since boot, or None off Linux.

    Sums the user, nice, system, irq, softirq and steal columns of the "cpu"
    line of /proc/stat, which count clock ticks over every core.
    """
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """Return the CPU seconds used by this process and its finished children."""
    total = 0.0
    for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(scope)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclasses.dataclass
class CpuShare:
    """How much of the machine's CPU time other processes took while the benchmark ran."""

    wall_start: float
    busy_start: float
    own_start: float

    @classmethod
    def start(cls):
        return cls(time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds())

    def others_fraction(self):
        """Return the other processes' share of all cores' time since start(), or None."""
        busy_end = busy_cpu_seconds()
        if self.busy_start is None or busy_end is None:
            return None
        capacity = (time.perf_counter() - self.wall_start) * (os.cpu_count() or 1)
        others = (busy_end - self.busy_start) - (own_cpu_seconds() - self.own_start)
        return min(max(others / capacity, 0.0), 1.0)


def describe_machine():
    """Return the machine and library facts that the numbers depend on, as (name, value) rows."""
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    thread_env = [f"{name}={os.environ[name]}" for name in
                  ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                   "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS") if name in os.environ]
    return [
        ("CPU", cpu_model()),
        ("cores (os.cpu_count)", str(os.cpu_count())),
        ("Python", platform.python_version()),
        ("TensorFlow", tf.__version__),
        ("Keras", keras.__version__),
        ("numpy", np.__version__),
        ("TF intra-op threads", f"{intra} (0 = chosen by TensorFlow)"),
        ("TF inter-op threads", f"{inter} (0 = chosen by TensorFlow)"),
        ("TF op determinism", "enabled by sparseae.cli.set_seed, as in the scripts"),
        ("thread variables", ", ".join(thread_env) or "none set"),
        ("1-minute load average at start", f"{os.getloadavg()[0]:.2f}"
         if hasattr(os, "getloadavg") else "unavailable"),
    ]


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Series:
    """Repeated measurements of one rate, one value per round."""

    values: list = dataclasses.field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.values)

    def describe(self, digits=1, unit=""):
        """Return "median (min–max)" with unit after each number, or one value for one round."""
        def number(value):
            return f"{value:,.{digits}f}{unit}"

        if len(self.values) == 1:
            return number(self.values[0])
        return f"{number(self.median)} ({number(min(self.values))}–{number(max(self.values))})"


def ratio_series(numerator, denominator):
    """Return the per-round ratios of two series measured in the same rounds."""
    return Series([a / b for a, b in zip(numerator.values, denominator.values)])


# ---------------------------------------------------------------------------
# Matrix product rate and the autoencoder's training step
# ---------------------------------------------------------------------------


def step_flop(batch_rows, n_hidden):
    """Return the multiply-add FLOP of one training step's matrix products (2*m*k*n each)."""
    return PRODUCTS_PER_STEP * 2 * batch_rows * N_VISIBLE * n_hidden


class MatmulLoop:
    """A compiled loop of (rows x 784) @ (784 x n_hidden) products at TensorFlow's thread settings."""

    def __init__(self, x, rows, n_hidden, products):
        rng = np.random.default_rng(0)
        self.a = tf.constant(x[:rows])
        # Two weight matrices, swapped every iteration, so that no optimizer
        # can hoist a loop-invariant product out of the loop.
        self.weights = [tf.constant(rng.uniform(-0.1, 0.1, (N_VISIBLE, n_hidden))
                                    .astype(np.float32)) for _ in range(2)]
        self.products = products
        self.flop = products * 2 * rows * N_VISIBLE * n_hidden
        self.run = tf.function(self._loop)
        self.run(self.a, *self.weights)  # trace before timing

    def _loop(self, a, w, w_other):
        # Only one element of each product is kept, so the loop costs the
        # products alone; TensorFlow still computes every product in full.
        checksum = tf.zeros((), a.dtype)
        for _ in tf.range(self.products):
            checksum += tf.matmul(a, w)[0, 0]
            w, w_other = w_other, w
        return checksum

    def gflops(self):
        """Time the loop once and return GFLOP/s."""
        start = time.perf_counter()
        self.run(self.a, *self.weights).numpy()
        return self.flop / (time.perf_counter() - start) / 1e9


def initial_weights(n_hidden, seed):
    """Return SparseAutoencoder's initial (W1, b1, W2, b2) as float32 numpy arrays."""
    model = SparseAutoencoder(N_VISIBLE, n_hidden, seed=seed)
    return [variable.numpy() for variable in model.variables_in_order]


def cost_settings():
    """Return the cost and optimizer settings of sparseae_generic's defaults."""
    config = sparseae_generic.CONFIG
    return {"rho": RHO, "beta": config["beta"], "weight_decay": config["weight_decay"],
            "learning_rate": config["learning_rate"]}


class OursTrainer:
    """One epoch of our training as train_autoencoder runs it: a shuffled copy, then train_epoch."""

    def __init__(self, x, batch_size, n_hidden, seed):
        settings = cost_settings()
        self.model = SparseAutoencoder(N_VISIBLE, n_hidden, rho=settings["rho"],
                                       beta=settings["beta"],
                                       weight_decay=settings["weight_decay"], seed=seed)
        optimizer = make_optimizer("adam", settings["learning_rate"])
        self.train_epoch = build_train_epoch(self.model, optimizer, batch_size)
        self.x = tf.constant(x)
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 1])
        self.epoch_seconds()  # trace and compile before timing

    def epoch_seconds(self):
        n = len(self.x)
        start = time.perf_counter()
        epoch_x = tf.gather(self.x, self.rng.permutation(n)) if self.batch_size < n else self.x
        _, bad_step = self.train_epoch(epoch_x)
        bad_step = int(bad_step)  # waits for the epoch to finish
        if bad_step >= 0:
            raise RuntimeError(f"the cost J stopped being finite at step {bad_step + 1}")
        return time.perf_counter() - start


class KerasTrainer:
    """One epoch of the Keras peer's Model.fit."""

    def __init__(self, x, batch_size, n_hidden, seed):
        self.peer = KerasSparseAutoencoder(initial_weights(n_hidden, seed), **cost_settings())
        self.x = x
        self.batch_size = batch_size
        self.epoch_seconds()  # trace before timing

    def epoch_seconds(self):
        return self.peer.train_epoch(self.x, self.batch_size)


class NumpyTrainer:
    """One epoch of the numpy peer."""

    def __init__(self, x, batch_size, n_hidden, seed):
        self.peer = NumpySparseAutoencoder(initial_weights(n_hidden, seed), **cost_settings())
        self.x = x
        self.batch_size = batch_size
        self.rng = np.random.default_rng([seed, 1])

    def epoch_seconds(self):
        start = time.perf_counter()
        self.peer.train_epoch(self.x, self.batch_size, self.rng)
        return time.perf_counter() - start


AUTOENCODER_VARIANTS = {"ours": OursTrainer, "Keras Model.fit": KerasTrainer,
                        "numpy": NumpyTrainer}


def measure_autoencoder(x, batch_sizes, repeats, n_hidden, seed=0):
    """Return {batch size: {"matmul": GFLOP/s Series, variant: images/s Series}}."""
    n = len(x)
    results = {}
    for batch_size in batch_sizes:
        steps = math.ceil(n / batch_size)
        log.info("batch %d: tracing the matmul loop and the three trainers", batch_size)
        # The matmul loop does the same number of products as one epoch's steps.
        matmul = MatmulLoop(x, batch_size, n_hidden, PRODUCTS_PER_STEP * steps)
        trainers = {name: make(x, batch_size, n_hidden, seed)
                    for name, make in AUTOENCODER_VARIANTS.items()}
        series = {"matmul": Series(), **{name: Series() for name in trainers}}
        for round_index in range(repeats):
            names = list(trainers) if round_index % 2 == 0 else list(reversed(trainers))
            series["matmul"].values.append(matmul.gflops())
            for name in names:
                series[name].values.append(n / trainers[name].epoch_seconds())
            log.info("batch %d, round %d/%d: matmul %.1f GFLOP/s, %s", batch_size,
                     round_index + 1, repeats, series["matmul"].values[-1],
                     ", ".join(f"{name} {series[name].values[-1]:,.0f} images/s"
                               for name in trainers))
        results[batch_size] = series
        del trainers, matmul
    return results


# ---------------------------------------------------------------------------
# Classifier training
# ---------------------------------------------------------------------------


def time_fit_epochs(model):
    """Make every later model.fit call record its epoch times, also when train_classifier calls it."""
    timer = EpochTimer()
    fit = model.fit

    def fit_with_timer(*args, callbacks=None, **kwargs):
        return fit(*args, callbacks=[*(callbacks or []), timer], **kwargs)

    model.fit = fit_with_timer
    return timer


def train_ours(x, y, settings):
    train_classifier(settings["model"], x, y, epochs=settings["epochs"],
                     batch_size=settings["batch_size"], learning_rate=settings["learning_rate"])


def train_default_fit(x, y, settings):
    model = settings["model"]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=settings["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=settings["batch_size"], epochs=settings["epochs"], verbose=0)


CLASSIFIER_VARIANTS = {"ours (train_classifier)": train_ours,
                       "default Model.fit": train_default_fit}


def measure_classifier(x, y, repeats, epochs, seed=0):
    """Return {variant: {"call", "steady", "first_epoch_s"}}: steps/s per call and after epoch 1.

    "call" counts a whole train_classifier-sized call, compile and tracing
    included, as the semi-supervised script pays it; "steady" counts epochs
    2 and later only.
    """
    config = semisupervised.CONFIG
    batch_size = config["batch_size"]
    steps_per_epoch = math.ceil(len(x) / batch_size)
    results = {name: {"call": Series(), "steady": Series(), "first_epoch_s": Series()}
               for name in CLASSIFIER_VARIANTS}
    for round_index in range(repeats):
        names = (list(CLASSIFIER_VARIANTS) if round_index % 2 == 0
                 else list(reversed(CLASSIFIER_VARIANTS)))
        for name in names:
            # The same seed gives both variants the same initial weights.
            keras.utils.set_random_seed(seed)
            model = build_network(config["hidden"], weight_decay=config["classifier_weight_decay"])
            timer = time_fit_epochs(model)
            settings = {"model": model, "epochs": epochs, "batch_size": batch_size,
                        "learning_rate": config["learning_rate"]}
            start = time.perf_counter()
            CLASSIFIER_VARIANTS[name](x, y, settings)
            elapsed = time.perf_counter() - start

            later_epochs = timer.seconds[1:] or timer.seconds
            row = results[name]
            row["call"].values.append(epochs * steps_per_epoch / elapsed)
            row["steady"].values.append(len(later_epochs) * steps_per_epoch / sum(later_epochs))
            row["first_epoch_s"].values.append(elapsed - sum(timer.seconds[1:]))
        log.info("classifier round %d/%d: %s", round_index + 1, repeats,
                 ", ".join(f"{name} {results[name]['call'].values[-1]:,.0f} steps/s"
                           for name in CLASSIFIER_VARIANTS))
    return results, steps_per_epoch


# ---------------------------------------------------------------------------
# Whole scripts
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ScriptRun:
    """Wall time, peak memory and outcome of one script run as a subprocess."""

    name: str
    seconds: float = None
    peak_rss_mib: float = None
    rss_source: str = ""
    returncode: int = None
    results_complete: bool = None
    error: str = ""


def parse_time_verbose(stderr):
    """Split GNU time -v output off a script's stderr; return (script stderr, peak RSS KiB or None)."""
    match = re.search(r"^(Command exited with non-zero status|\tCommand being timed:)", stderr,
                      flags=re.MULTILINE)
    if match is None:
        return stderr, None
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr[match.start():])
    return stderr[: match.start()], int(peak.group(1)) if peak else None


def results_complete(out_dir):
    """Return whether every results JSON the script wrote has "complete": true."""
    files = sorted(Path(out_dir).glob("results*.json"))
    if not files:
        return False
    for path in files:
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("complete") is not True:
                return False
        except (OSError, ValueError):
            return False
    return True


def run_script(name, timeout):
    """Run REPO_ROOT/<name>.py at its defaults with --out in a temporary directory."""
    run = ScriptRun(name)
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.TemporaryDirectory(prefix=f"benchmark-{name}-") as out_dir:
        command = [sys.executable, str(REPO_ROOT / f"{name}.py"), "--out", out_dir]
        if gnu_time:
            command = [gnu_time, "-v", *command]
        log.info("running %s", shlex.join(command))
        start = time.perf_counter()
        # A session of its own, so that a timeout stops the script and not
        # only the time process that wraps it.
        with subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              start_new_session=True) as process:
            try:
                _, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                run.error = f"timed out after {timeout:.0f} s"
                log.error("%s %s; raise --script-timeout to let it finish", name, run.error)
                return run
        run.seconds = time.perf_counter() - start
        run.returncode = process.returncode
        run.results_complete = results_complete(out_dir)

    stderr, peak_kib = parse_time_verbose(stderr) if gnu_time else (stderr, None)
    if peak_kib is not None:
        run.rss_source = "GNU time -v"
    else:
        # ru_maxrss of RUSAGE_CHILDREN is the largest child so far, in KiB on Linux.
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        run.rss_source = "getrusage(RUSAGE_CHILDREN), maximum over all runs so far"
    run.peak_rss_mib = peak_kib / 1024
    if run.returncode != 0:
        last_lines = stderr.strip().splitlines()[-3:]
        run.error = f"exit status {run.returncode}: " + " / ".join(last_lines)
        log.error("%s failed with %s", name, run.error)
    log.info("%s: %.1f s, peak RSS %.0f MiB", name, run.seconds, run.peak_rss_mib)
    return run
