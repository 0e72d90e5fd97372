"""Tests of how the scripts fail: invalid options, damaged data, unusable outputs,
diverging training and Ctrl-C, plus runs without a display.

Each failure must end in one message, with exit status 2 for an invalid
option (as argparse does), 1 for bad data, outputs or training, and 130
for Ctrl-C, and must leave no partly written file behind.
"""

import ast
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.figure
import matplotlib.image
import numpy as np
import pytest

from sparseae import autoencoder, classifier, cli, mosaic, outputs, plots
from sparseae.data import DEFAULT_DATA_DIR
from scripts import ROOT, load_script

generic = load_script("sparseae_generic")
semi = load_script("sparseae_semiSupervisedLearning")
TINY_GENERIC = ["--sparsities", "0.1", "--train-size", "200", "--epochs", "1", "--hidden", "20"]
OLD_CONTENT = b"previous complete file\n"


def forbid_training(monkeypatch):
    """Make every training function fail the test if a script calls it."""

    def training_started(*args, **kwargs):
        raise AssertionError("training started before the invalid input was reported")

    monkeypatch.setattr(autoencoder, "train_autoencoder", training_started)
    monkeypatch.setattr(classifier, "train_classifier", training_started)


def run_script(script, argv):
    """Run a script's main(argv) through cli.run, as its __main__ block does; return the status."""
    return cli.run(lambda: script.main(argv))


def error_lines(stderr):
    """Return the lines of stderr that report an error."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def leftover_temp_files(directory):
    """Return the names of atomic_write's temporary files left in directory."""
    return [path.name for path in Path(directory).iterdir() if path.name.endswith(".tmp")]


def damaged_idx_dir(directory):
    """Create directory with the shipped MNIST files, the training labels cut to 1000 bytes.

    Return the path of the damaged file.
    """
    directory.mkdir()
    for path in DEFAULT_DATA_DIR.glob("*.gz"):
        os.symlink(path, directory / path.name)
    damaged = directory / "train-labels-idx1-ubyte.gz"
    damaged.unlink()
    damaged.write_bytes((DEFAULT_DATA_DIR / damaged.name).read_bytes()[:1000])
    return damaged


def environment_without_display():
    """Return os.environ without the variables that select a display or a plotting backend."""
    environment = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND"):
        environment.pop(name, None)
    return environment


# ---------------------------------------------------------------------------
# Invalid options: exit status 2 before any data is read or training starts
# ---------------------------------------------------------------------------

GENERIC_INVALID_OPTIONS = [
    (["--sparsities", "0"], "--sparsities", "(0, 1)"),
    (["--sparsities", "1"], "--sparsities", "(0, 1)"),
    (["--sparsities", "-0.1"], "--sparsities", "(0, 1)"),
    (["--sparsities", "1.5"], "--sparsities", "(0, 1)"),
    (["--sparsities", "0.1", "1"], "--sparsities", "(0, 1)"),
    (["--beta", "-1"], "--beta", ">= 0"),
    (["--weight-decay", "-0.001"], "--weight-decay", ">= 0"),
    (["--hidden", "0"], "--hidden", ">= 1"),
    (["--hidden", "-5"], "--hidden", ">= 1"),
    (["--train-size", "0"], "--train-size", ">= 1"),
    (["--data", "kera"], "--data", "'keras'"),
]

SEMI_INVALID_OPTIONS = [
    (["--rho", "0"], "--rho", "(0, 1)"),
    (["--rho", "1"], "--rho", "(0, 1)"),
    (["--rho", "-0.1"], "--rho", "(0, 1)"),
    (["--rho", "1.5"], "--rho", "(0, 1)"),
    (["--beta", "-1"], "--beta", ">= 0"),
    (["--weight-decay", "-0.001"], "--weight-decay", ">= 0"),
    (["--hidden", "0"], "--hidden", ">= 1"),
    (["--labels-per-class", "0"], "--labels-per-class", ">= 1"),
    (["--data", "kera"], "--data", "'keras'"),
]


@pytest.mark.parametrize(
    "script, options, option, allowed",
    [(generic, *case) for case in GENERIC_INVALID_OPTIONS]
    + [(semi, *case) for case in SEMI_INVALID_OPTIONS],
    ids=[f"generic {' '.join(case[0])}" for case in GENERIC_INVALID_OPTIONS]
    + [f"semi {' '.join(case[0])}" for case in SEMI_INVALID_OPTIONS],
)
def test_invalid_option_exits_2(script, options, option, allowed, tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    out_dir = tmp_path / "out"

    with pytest.raises(SystemExit) as exit_info:
        script.main(options + ["--out", str(out_dir)])

    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {option}" in message
    assert allowed in message
    assert not out_dir.exists()


def test_data_missing_path_names_it(tmp_path, capsys):
    missing = tmp_path / "no-such-dir"

    with pytest.raises(SystemExit) as exit_info:
        generic.main(["--data", str(missing), "--out", str(tmp_path / "out")])

    assert exit_info.value.code == 2
    assert str(missing) in capsys.readouterr().err


def test_train_size_above_available_exits_2(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    out_dir = tmp_path / "out"

    with pytest.raises(SystemExit) as exit_info:
        generic.main(["--train-size", "60001", "--out", str(out_dir)])

    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --train-size" in message
    assert "60000 training images" in message
    assert "from 1 to 60000" in message
    assert not out_dir.exists()


def test_labels_per_class_above_rarest_digit(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    out_dir = tmp_path / "out"

    # Digit 5 is the rarest in the MNIST training set, with 5421 images.
    with pytest.raises(SystemExit) as exit_info:
        semi.main(["--labels-per-class", "100", "6000", "--out", str(out_dir)])

    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "argument --labels-per-class" in message
    assert "6000" in message
    assert "digit 5" in message
    assert "from 1 to 5421" in message
    assert not out_dir.exists()


# ---------------------------------------------------------------------------
# Damaged data: exit status 1, one line naming the file, nothing in --out
# ---------------------------------------------------------------------------


def test_generic_damaged_file_one_line(tmp_path):
    damaged = damaged_idx_dir(tmp_path / "mnist")
    out_dir = tmp_path / "out"

    # A subprocess, so that stderr contains everything a user would see.
    result = subprocess.run(
        [sys.executable, "sparseae_generic.py", "--data", str(damaged.parent),
         "--out", str(out_dir)],
        cwd=ROOT, env=environment_without_display(), capture_output=True, text=True,
        timeout=120,
    )

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert str(damaged) in lines[0]
    assert "truncated" in lines[0]
    assert result.stdout == ""
    assert not out_dir.exists()


def test_semi_html_npz_exits_1(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    npz = tmp_path / "mnist.npz"
    npz.write_bytes(b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>\n")
    out_dir = tmp_path / "out"

    status = run_script(semi, ["--data", str(npz), "--out", str(out_dir)])

    assert status == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1
    assert str(npz) in lines[0]
    assert "HTML" in lines[0]
    assert not out_dir.exists()


# ---------------------------------------------------------------------------
# Output directory: reported before training, with exit status 1
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("script", [generic, semi], ids=["generic", "semi"])
def test_out_is_existing_file(script, tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    out_file = tmp_path / "figures"
    out_file.write_bytes(OLD_CONTENT)

    status = run_script(script, ["--out", str(out_file)])

    assert status == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1
    assert str(out_file) in lines[0]
    assert "not a directory" in lines[0]
    assert out_file.read_bytes() == OLD_CONTENT


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root can write to a directory with mode 0o500")
def test_out_read_only_directory(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)
    out_dir = tmp_path / "read-only"
    out_dir.mkdir()
    out_dir.chmod(0o500)
    try:
        status = run_script(generic, TINY_GENERIC + ["--out", str(out_dir)])
    finally:
        out_dir.chmod(0o700)

    assert status == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "cannot write to output directory" in lines[0]
    assert list(out_dir.iterdir()) == []


def test_out_unwritable_directory_simulated(tmp_path, capsys, monkeypatch):
    forbid_training(monkeypatch)

    # Runs as root too, where chmod cannot make a directory unwritable.
    def permission_denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs.tempfile, "TemporaryFile", permission_denied)
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    status = run_script(generic, TINY_GENERIC + ["--out", str(out_dir)])

    assert status == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert str(out_dir) in lines[0]
    assert "Permission denied" in lines[0]
    assert "--out" in lines[0]


# ---------------------------------------------------------------------------
# Atomic writes: a failure while writing keeps the previous file
# ---------------------------------------------------------------------------


def write_results(path, monkeypatch, failure):
    def partial_dump(data, handle, **kwargs):
        handle.write('{"runs": [')
        raise failure

    monkeypatch.setattr(outputs.json, "dump", partial_dump)
    outputs.write_json(path, {"runs": []})


def write_figure(path, monkeypatch, failure):
    def partial_savefig(self, target, **kwargs):
        target.write(b"\x89PNG\r\n\x1a\n partial")
        raise failure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", partial_savefig)
    plots.plot_accuracy_bars(path, ["baseline", "fine-tuned"], [[0.5, 0.6], [0.7, 0.8]],
                             "accuracy")


def write_mosaic(path, monkeypatch, failure):
    def partial_imsave(target, array, **kwargs):
        target.write(b"\x89PNG\r\n\x1a\n partial")
        raise failure

    monkeypatch.setattr(matplotlib.image, "imsave", partial_imsave)
    mosaic.save_mosaic(path, np.zeros((4, 784)))


@pytest.mark.parametrize("writer", [write_results, write_figure, write_mosaic],
                         ids=["results json", "figure", "mosaic"])
@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     KeyboardInterrupt()], ids=["disk full", "ctrl-c"])
def test_failed_write_keeps_old_file(writer, failure, tmp_path, monkeypatch):
    path = tmp_path / "result.out"
    path.write_bytes(OLD_CONTENT)

    with pytest.raises(type(failure)):
        writer(path, monkeypatch, failure)

    assert path.read_bytes() == OLD_CONTENT
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "results.json"

    with pytest.raises(OSError):
        write_results(path, monkeypatch, OSError(errno.ENOSPC, "No space left on device"))

    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Ctrl-C: one line and status 130
# ---------------------------------------------------------------------------


def test_run_keyboard_interrupt_returns_130(capsys):
    def interrupted_main():
        raise KeyboardInterrupt

    assert cli.run(interrupted_main) == 130

    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("interrupted")


def test_run_lets_unexpected_errors_through():
    def broken_main():
        raise ValueError("a bug, not bad input")

    with pytest.raises(ValueError, match="a bug"):
        cli.run(broken_main)


def test_sigint_during_training_exits_130(tmp_path):
    out_dir = tmp_path / "out"
    stderr_path = tmp_path / "stderr.txt"
    argv = [sys.executable, "sparseae_generic.py", "--sparsities", "0.1", "--train-size", "200",
            "--hidden", "20", "--epochs", "100000", "--out", str(out_dir)]

    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(argv, cwd=ROOT, env=environment_without_display(),
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            # Each epoch logs a line, so a second "epoch" line means training is running.
            deadline = time.monotonic() + 90
            while stderr_path.read_text().count(" epoch ") < 2:
                assert process.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, "training did not start within 90 s"
                time.sleep(0.2)
            process.send_signal(signal.SIGINT)
            status = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    err = stderr_path.read_text()
    assert status == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("interrupted")
    assert leftover_temp_files(out_dir) == []


# ---------------------------------------------------------------------------
# Diverging training: status 1 naming p, epoch and step; nothing written for that p
# ---------------------------------------------------------------------------


def test_nonfinite_loss_stops_script(tmp_path, capsys, monkeypatch):
    train_autoencoder = autoencoder.train_autoencoder

    # A NaN pixel makes J NaN at the first step for p = 0.5 only.
    def train_with_nan_pixel(model, x, config):
        if model.rho == 0.5:
            x = np.array(x)
            x[0, 0] = np.nan
        return train_autoencoder(model, x, config)

    monkeypatch.setattr(autoencoder, "train_autoencoder", train_with_nan_pixel)
    out_dir = tmp_path / "out"
    argv = TINY_GENERIC[:] + ["--out", str(out_dir)]
    argv[1:2] = ["0.1", "0.5"]

    status = run_script(generic, argv)

    assert status == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1
    assert "p=0.5" in lines[0]
    assert "epoch 1" in lines[0]
    assert "step 1" in lines[0]

    for name in ("W1_0.1.png", "X_0.1.png", "X_hat_0.1.png"):
        assert (out_dir / name).is_file(), name
    for name in ("W1_0.5.png", "X_0.5.png", "X_hat_0.5.png", generic.HISTOGRAM_FILE,
                 generic.SUMMARY_FILE):
        assert not (out_dir / name).exists(), name
    results = json.loads((out_dir / generic.RESULTS_FILE).read_text())
    assert [run["p"] for run in results["runs"]] == [0.1]
    assert results["complete"] is False
    assert leftover_temp_files(out_dir) == []


# ---------------------------------------------------------------------------
# Headless: Agg backend, no show(), no figure left open
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [None, "TkAgg"], ids=["unset", "TkAgg"])
def test_mosaic_import_selects_agg(backend):
    environment = environment_without_display()
    if backend is not None:
        environment["MPLBACKEND"] = backend

    result = subprocess.run(
        [sys.executable, "-c",
         "import sparseae.mosaic, matplotlib; print(matplotlib.get_backend())"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().lower() == "agg"


def test_plots_leave_no_open_figure(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    rng = np.random.default_rng(0)

    plots.plot_accuracy_bars(tmp_path / "bars.png", ["baseline", "fine-tuned"],
                             [[0.5, 0.6], [0.7, 0.8]], "accuracy")
    plots.plot_label_budget(tmp_path / "budget.png", [10, 100],
                            {"baseline": [[0.5, 0.6], [0.8, 0.9]]}, "label budget")
    plots.plot_rho_hat_histograms(tmp_path / "rho_hat.png", [0.1, 0.5],
                                  [rng.uniform(size=20), rng.uniform(size=20)])
    plots.plot_sparsity_summary(tmp_path / "summary.png", [0.1, 0.5], [0.12, 0.48], [9.0, 7.0])
    mosaic.save_mosaic(tmp_path / "mosaic.png", rng.uniform(size=(100, 784)), mode="weights")

    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []
    for name in ("bars.png", "budget.png", "rho_hat.png", "summary.png", "mosaic.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
    assert leftover_temp_files(tmp_path) == []


def test_no_show_calls_in_sources():
    sources = sorted((ROOT / "sparseae").glob("*.py")) + sorted(ROOT.glob("sparseae_*.py"))
    assert len(sources) > 2

    for source in sources:
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr != "show", f"{source.name}:{node.lineno} calls show()"


def test_generic_runs_without_display(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    out_dir = tmp_path / "out"

    assert run_script(generic, TINY_GENERIC + ["--out", str(out_dir)]) == 0

    figures = ["W1_0.1.png", "X_0.1.png", "X_hat_0.1.png", generic.HISTOGRAM_FILE,
               generic.SUMMARY_FILE]
    for name in figures:
        assert (out_dir / name).read_bytes().startswith(b"\x89PNG"), name
    results = json.loads((out_dir / generic.RESULTS_FILE).read_text())
    assert results["complete"] is True
    assert leftover_temp_files(out_dir) == []

    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


@pytest.mark.parametrize("script", [generic, semi], ids=["generic", "semi"])
@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_seed_out_of_range_exits_2(script, seed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--seed", seed, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "--seed" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_last_seed_out_of_range_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        semi.main(["--seed", "4294967295", "--seeds", "2", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--seeds" in capsys.readouterr().err


def test_validation_budget_too_small_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        semi.main(["--eval-split", "validation", "--labels-per-class", "2", "--out",
                   str(tmp_path)])
    assert exit_info.value.code == 2
    assert "at least 5 labels per digit" in capsys.readouterr().err


def test_written_files_follow_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        outputs.write_json(tmp_path / "results.json", {"a": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644
