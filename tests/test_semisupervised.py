"""Tests of the labelled split, the pretrained-weight initializer and the semi-supervised script."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from scripts import load_script
from sparseae.autoencoder import SparseAutoencoder
from sparseae.classifier import (
    ArrayInitializer,
    LabelBudgetError,
    build_network,
    complement,
    select_labelled,
)


# ---------------------------------------------------------------------------
# Labelled set
# ---------------------------------------------------------------------------


def test_labelled_set_has_100_per_digit(mnist):
    (_, y_train), _ = mnist
    labelled = select_labelled(y_train, 100, seed=0)
    assert len(labelled) == 1000
    assert np.bincount(y_train[labelled], minlength=10).tolist() == [100] * 10
    assert len(np.unique(labelled)) == 1000


def test_labelled_set_reproducible_from_seed(mnist):
    (_, y_train), _ = mnist
    first = select_labelled(y_train, 100, seed=3)
    again = select_labelled(y_train, 100, seed=3)
    other = select_labelled(y_train, 100, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_labelled_and_evaluation_sets_disjoint(mnist):
    (_, y_train), _ = mnist
    labelled = select_labelled(y_train, 100, seed=0)
    evaluation = complement(labelled, len(y_train))
    assert len(evaluation) == 59000
    assert np.intersect1d(labelled, evaluation).size == 0
    assert len(np.union1d(labelled, evaluation)) == 60000


def test_label_budget_too_large_names_digit():
    labels = np.repeat(np.arange(10), 5)
    labels[labels == 7] = 0  # digit 7 now has no images
    with pytest.raises(LabelBudgetError, match="digit 7 has only 0 images"):
        select_labelled(labels, 3, seed=0)


# ---------------------------------------------------------------------------
# ArrayInitializer
# ---------------------------------------------------------------------------


def test_initializer_rejects_transposed_shape():
    initializer = ArrayInitializer(np.zeros((200, 784)))
    with pytest.raises(ValueError) as error:
        initializer((784, 200))
    assert "(200, 784)" in str(error.value)
    assert "(784, 200)" in str(error.value)


def test_initializer_rejects_shape_in_layer():
    layer = keras.layers.Dense(200, kernel_initializer=ArrayInitializer(np.zeros((200, 784))))
    with pytest.raises(ValueError, match=r"\(200, 784\).*\(784, 200\)"):
        layer.build((None, 784))


@pytest.mark.parametrize("dtype, expected", [
    (None, "float32"),
    ("float32", "float32"),
    ("float64", "float64"),
    (tf.float64, "float64"),
    (np.float16, "float16"),
])
def test_initializer_returns_requested_dtype(dtype, expected):
    value = np.random.default_rng(0).normal(size=(3, 4))  # float64
    tensor = ArrayInitializer(value)((3, 4), dtype=dtype)
    assert keras.backend.standardize_dtype(tensor.dtype) == expected
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), value.astype(expected))


def test_initializer_config_round_trip():
    value = np.random.default_rng(1).normal(size=(5, 2)).astype("float32")
    initializer = ArrayInitializer(value)
    rebuilt = ArrayInitializer.from_config(initializer.get_config())
    np.testing.assert_array_equal(rebuilt.value.astype("float32"), value)
    serialized = keras.initializers.serialize(initializer)
    restored = keras.initializers.deserialize(serialized)
    assert isinstance(restored, ArrayInitializer)
    np.testing.assert_array_equal(restored((5, 2)), value)


def random_weights(seed=0, n_hidden=200):
    """Return (W1, b1, W_softmax, b_softmax) drawn at random, as a pretrained stand-in."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.05, (784, n_hidden)), rng.normal(0, 0.5, n_hidden),
            rng.normal(0, 0.5, (n_hidden, 10)), rng.normal(0, 0.5, 10))


def test_pretrained_network_saves_and_loads(tmp_path, mnist_slice):
    network = build_network(weights=random_weights())
    path = tmp_path / "pretrained.keras"
    network.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(network.predict(mnist_slice[:20], verbose=0),
                                  loaded.predict(mnist_slice[:20], verbose=0))


def test_pretrained_network_uses_all_arrays():
    weights = random_weights(2)
    network = build_network(weights=weights)
    for got, expected in zip(network.get_weights(), weights):
        np.testing.assert_array_equal(got, expected.astype("float32"))


def test_stacked_network_matches_encoder_then_softmax(mnist_slice):
    autoencoder = SparseAutoencoder(784, 200, rho=0.1, seed=5)
    autoencoder.b1.assign(np.random.default_rng(5).normal(0, 0.5, 200).astype("float32"))
    _, _, kernel, bias = random_weights(3)
    network = build_network(weights=(autoencoder.W1.numpy(), autoencoder.b1.numpy(), kernel, bias))

    codes = autoencoder.encode(mnist_slice).numpy()
    separate = keras.activations.softmax(codes @ kernel.astype("float32") + bias.astype("float32"))
    stacked = network.predict(mnist_slice, verbose=0)
    np.testing.assert_allclose(stacked, keras.ops.convert_to_numpy(separate), atol=1e-5)


# ---------------------------------------------------------------------------
# The script, end to end on tiny sizes
# ---------------------------------------------------------------------------


def test_script_quick_run_writes_outputs(tmp_path, capsys):
    script = load_script("sparseae_semiSupervisedLearning")
    assert script.main(["--quick", "--out", str(tmp_path)]) == 0

    table = capsys.readouterr().out
    assert "10 labels per digit" in table
    for name in ("baseline", "softmax on codes", "fine-tuned"):
        assert name in table
    assert "59900 training images outside the labelled set" in table

    for name in ("semisupervised_rest.png", "W1_semisupervised_labelled.png",
                 "results_semisupervised_rest.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    results = json.loads((tmp_path / "results_semisupervised_rest.json").read_text())
    assert results["complete"] is True
    budget = results["budgets"][0]
    assert budget["eval_split"] == "rest"
    assert len(budget["runs"]) == 2
    for run in budget["runs"]:
        assert run["n_labelled"] == 100
        assert run["scores"]["softmax on codes"]["max_abs_difference_to_separate"] < 1e-5
        for scores in run["scores"].values():
            assert 0.0 <= scores["accuracy"] <= 1.0


def test_script_label_budget_sweep_with_unlabelled(tmp_path, capsys):
    script = load_script("sparseae_semiSupervisedLearning")
    argv = ["--quick", "--labels-per-class", "2", "5", "--pretrain-on", "labelled",
            "unlabelled", "--out", str(tmp_path)]
    assert script.main(argv) == 0

    table = capsys.readouterr().out
    assert "fine-tuned (AE on unlabelled)" in table
    assert "10000 test images" in table
    assert (tmp_path / "label_budget_test.png").stat().st_size > 0
    assert not list(tmp_path.glob("W1_*.png"))  # a sweep draws no mosaics
    results = json.loads((tmp_path / "results_label_budget_test.json").read_text())
    assert [budget["labels_per_class"] for budget in results["budgets"]] == [2, 5]
    assert all(budget["eval_split"] == "test" for budget in results["budgets"])


def test_script_rejects_rest_split_with_unlabelled(tmp_path, capsys):
    script = load_script("sparseae_semiSupervisedLearning")
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--pretrain-on", "unlabelled", "--eval-split", "rest", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "--eval-split" in capsys.readouterr().err


def test_validation_split_holds_out_labelled_images(tmp_path, capsys):
    script = load_script("sparseae_semiSupervisedLearning")
    argv = ["--quick", "--labels-per-class", "5", "--seeds", "1", "--eval-split", "validation",
            "--out", str(tmp_path)]
    assert script.main(argv) == 0

    assert "10 held-out labelled images (validation)" in capsys.readouterr().out
    results = json.loads((tmp_path / "results_semisupervised_validation.json").read_text())
    run = results["budgets"][0]["runs"][0]
    assert (run["n_labelled"], run["n_eval"]) == (40, 10)


def test_split_labelled_is_stratified(mnist):
    script = load_script("sparseae_semiSupervisedLearning")
    (_, y_train), _ = mnist
    labelled = select_labelled(y_train, 100, seed=0)
    train, held_out = script.split_labelled(labelled, y_train, seed=0)
    assert np.bincount(y_train[held_out], minlength=10).tolist() == [20] * 10
    assert np.bincount(y_train[train], minlength=10).tolist() == [80] * 10
    assert np.intersect1d(train, held_out).size == 0


def test_quick_run_defaults_away_from_figures():
    script = load_script("sparseae_semiSupervisedLearning")
    args, _ = script.parse_args(["--quick"])
    assert args.out == "runs/quick"
    explicit, _ = script.parse_args(["--quick", "--out", "elsewhere"])
    assert explicit.out == "elsewhere"


def test_repeated_pretrain_sources_run_once():
    script = load_script("sparseae_semiSupervisedLearning")
    args, _ = script.parse_args(["--pretrain-on", "labelled", "labelled"])
    assert args.pretrain_on == ["labelled"]
