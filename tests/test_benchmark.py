"""Tests of the benchmark: a tiny run writes every section, and its peers compute our cost."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from benchmarks import benchmark
from benchmarks.peers import NumpySparseAutoencoder, build_keras_autoencoder, keras_total_loss
from sparseae.autoencoder import SparseAutoencoder


def table_rows(report, heading):
    """Return the body rows of the first markdown table after heading, as lists of cells."""
    section = report.split(heading, 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return rows[2:]  # without the header and the |---| line


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    output = tmp_path_factory.mktemp("benchmark") / "benchmarks.md"
    assert benchmark.main(["--tiny", "--output", str(output)]) == 0
    return output


def test_tiny_report_written(tiny_report):
    assert tiny_report.is_file()
    assert tiny_report.read_text().startswith("# Training speed benchmarks")
    leftovers = [path.name for path in tiny_report.parent.iterdir() if path != tiny_report]
    assert leftovers == []


def test_tiny_report_names_machine_and_command(tiny_report):
    report = tiny_report.read_text()
    items = [row[0] for row in table_rows(report, "## Machine")]
    for item in ("CPU", "TensorFlow", "Keras", "numpy", "TF intra-op threads",
                 "TF inter-op threads"):
        assert item in items
    assert "benchmarks/benchmark.py --tiny --output" in report


def test_tiny_report_has_matmul_at_both_batches(tiny_report):
    rows = table_rows(tiny_report.read_text(), "## 1. Matrix product rate")
    assert [row[0] for row in rows] == ["256", "512"]


def test_tiny_report_has_our_step_at_both_batches(tiny_report):
    rows = table_rows(tiny_report.read_text(), "## 2. Autoencoder training step")
    assert [row[0] for row in rows] == ["256", "512"]


def test_tiny_report_has_both_peers(tiny_report):
    rows = table_rows(tiny_report.read_text(), "## 3. Peers")
    pairs = {(row[0], row[1]) for row in rows}
    for batch in ("256", "512"):
        for name in ("ours", "Keras Model.fit", "numpy"):
            assert (batch, name) in pairs


def test_tiny_report_has_classifier_both_ways(tiny_report):
    rows = table_rows(tiny_report.read_text(), "## 4. Classifier training")
    assert [row[0] for row in rows] == ["ours (train_classifier)", "default Model.fit"]


def test_tiny_report_marks_scripts_skipped(tiny_report):
    report = tiny_report.read_text()
    assert "Skipped (--skip-scripts)." in report
    targets = table_rows(report, "## Targets")
    script_rows = [row for row in targets if row[0].startswith("default sparseae")]
    assert len(script_rows) == 2
    assert all(row[1] == "skipped" for row in script_rows)


def test_tiny_report_gives_every_target_a_status(tiny_report):
    targets = table_rows(tiny_report.read_text(), "## Targets")
    assert len(targets) == 8
    for row in targets:
        assert row[2].startswith(("met", "missed", "not measured")), row


def test_tiny_flag_keeps_explicit_sizes():
    args = benchmark.parse_args(["--tiny", "--images", "1000"])
    assert args.images == 1000
    assert args.repeats == benchmark.TINY["repeats"]
    assert args.skip_scripts


# ---------------------------------------------------------------------------
# The peers compute the same cost and updates as sparseae.autoencoder
# ---------------------------------------------------------------------------


def float64_model(b1_mean=0.0):
    """Return a small float64 SparseAutoencoder with nonzero biases, and a batch for it."""
    rng = np.random.default_rng(0)
    # rho = 0.25 is exact in float32, which matters because kl_divergence
    # converts a Python float rho to a float32 tensor before casting it.
    model = SparseAutoencoder(12, 5, rho=0.25, beta=3.0, weight_decay=0.01, seed=4,
                              dtype="float64")
    model.b1.assign(rng.normal(b1_mean, 0.5, size=5))
    model.b2.assign(rng.normal(0.0, 0.5, size=12))
    x = rng.uniform(0.0, 1.0, size=(7, 12))
    return model, x


def numpy_peer(model, learning_rate=1e-2, **adam_settings):
    """Return the numpy peer starting from model's weights and cost settings."""
    return NumpySparseAutoencoder(
        [variable.numpy() for variable in model.variables_in_order], rho=model.rho,
        beta=model.beta, weight_decay=model.weight_decay, learning_rate=learning_rate,
        **adam_settings)


@pytest.mark.parametrize("b1_mean", [0.0, 60.0])  # 60: every hidden unit saturates at 1
def test_numpy_gradients_match_tensorflow(b1_mean):
    model, x = float64_model(b1_mean)
    expected_terms, expected_grads = model.gradients(tf.constant(x))
    terms, grads = numpy_peer(model).cost_and_gradients(x)

    for name, value in expected_terms.items():
        assert terms[name] == pytest.approx(float(value), rel=1e-12), name
    for name, grad, expected in zip(["W1", "b1", "W2", "b2"], grads, expected_grads):
        assert grad.dtype == np.float64, name
        np.testing.assert_allclose(grad, expected.numpy(), rtol=1e-10, atol=1e-14,
                                   err_msg=f"d{name}")


def test_numpy_adam_matches_keras_adam():
    model, x = float64_model()
    # Values exact in float32, because Keras rounds these settings to float32 before
    # casting them to the variables' float64.
    settings = {"learning_rate": 2.0**-7, "beta_1": 1 - 2.0**-3, "beta_2": 1 - 2.0**-10}
    peer = numpy_peer(model, **settings)
    optimizer = keras.optimizers.Adam(**settings)
    for _ in range(3):
        _, expected_grads = model.gradients(tf.constant(x))
        optimizer.apply_gradients(zip(expected_grads, model.variables_in_order))
        _, grads = peer.cost_and_gradients(x)
        peer.apply_adam(grads)

    for name, param, variable in zip(["W1", "b1", "W2", "b2"], peer.params,
                                     model.variables_in_order):
        np.testing.assert_allclose(param, variable.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


def test_keras_peer_loss_equals_cost(mnist_slice):
    model = SparseAutoencoder(784, 30, rho=0.1, beta=3.0, weight_decay=1e-3, seed=2)
    x = mnist_slice[:64]
    keras_model = build_keras_autoencoder(
        [variable.numpy() for variable in model.variables_in_order],
        rho=model.rho, beta=model.beta, weight_decay=model.weight_decay)
    expected = float(model.cost(tf.constant(x))["total"])
    assert keras_total_loss(keras_model, x) == pytest.approx(expected, rel=1e-5)
