"""Tests of the sparse autoencoder's cost, gradients and training on small real MNIST slices."""

import math

import numpy as np
import pytest
import tensorflow as tf

from sparseae.autoencoder import (
    NonFiniteLossError,
    SparseAutoencoder,
    TrainingConfig,
    evaluate_autoencoder,
    kl_divergence,
    make_optimizer,
    mean_activation,
    train_autoencoder,
)


def bernoulli_kl(p, q):
    """Reference KL(p || q) for Bernoulli variables, in plain Python."""
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


# ---------------------------------------------------------------------------
# The KL sparsity term
# ---------------------------------------------------------------------------


def test_kl_matches_hand_value():
    assert float(kl_divergence(0.1, tf.constant(0.05))) == pytest.approx(0.0206542, abs=1e-6)
    assert bernoulli_kl(0.1, 0.05) == pytest.approx(0.0206542, abs=1e-6)


def test_kl_is_zero_at_target():
    rho_hat = tf.constant([0.01, 0.1, 0.5, 0.8])
    values = kl_divergence(rho_hat, rho_hat).numpy()
    np.testing.assert_allclose(values, 0.0, atol=1e-6)


@pytest.mark.parametrize("batch_size", [32, 256])
def test_kl_of_saturated_batch_independent_of_batch_size(batch_size):
    activations = tf.fill((batch_size, 200), 0.9)
    rho_hat = mean_activation(activations)
    per_unit = kl_divergence(0.1, rho_hat).numpy()
    assert per_unit.shape == (200,)
    np.testing.assert_allclose(per_unit, 1.757780, atol=1e-5)


def test_rho_hat_is_mean_over_samples():
    activations = tf.constant([[0.0, 1.0, 0.2], [1.0, 1.0, 0.4]])
    rho_hat = mean_activation(activations).numpy()
    assert rho_hat.shape == (3,)
    np.testing.assert_allclose(rho_hat, [0.5, 1.0, 0.3])


def test_cost_uses_rho_hat_over_samples(mnist_slice):
    model = SparseAutoencoder(784, 20, rho=0.1, beta=3.0, weight_decay=0.0, seed=1)
    x = mnist_slice[:64]
    rho_hat = tf.reduce_mean(model.encode(x), axis=0)
    expected = 3.0 * sum(bernoulli_kl(0.1, float(q)) for q in rho_hat.numpy())
    assert float(model.cost(x)["sparsity_penalty"]) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("bias", [50.0, -120.0])
def test_kl_finite_when_units_saturate(mnist_slice, bias):
    model = SparseAutoencoder(784, 20, rho=0.1, seed=0)
    model.b1.assign(tf.fill((20,), bias))
    activations = model.encode(mnist_slice[:32]).numpy()
    assert np.all((activations == 0.0) | (activations == 1.0))

    terms, grads = model.gradients(mnist_slice[:32])
    for name, value in terms.items():
        assert np.isfinite(float(value)), name
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy()))


# ---------------------------------------------------------------------------
# Gradients and optimizer steps
# ---------------------------------------------------------------------------


def test_one_step_changes_all_four_variables(mnist_slice):
    model = SparseAutoencoder(784, 30, rho=0.1, seed=0)
    before = [variable.numpy().copy() for variable in model.variables_in_order]
    _, grads = model.gradients(mnist_slice[:50])
    make_optimizer("sgd", 0.1).apply_gradients(zip(grads, model.variables_in_order))
    for name, old, variable in zip(["W1", "b1", "W2", "b2"], before, model.variables_in_order):
        assert not np.array_equal(old, variable.numpy()), f"{name} did not change"


def test_weight_decay_changes_weight_gradients_only(mnist_slice):
    x = mnist_slice[:50]
    _, without = SparseAutoencoder(784, 30, weight_decay=0.0, seed=3).gradients(x)
    _, with_decay = SparseAutoencoder(784, 30, weight_decay=0.1, seed=3).gradients(x)
    names = ["W1", "b1", "W2", "b2"]
    for name, g0, g1 in zip(names, without, with_decay):
        if name.startswith("W"):
            assert not np.allclose(g0.numpy(), g1.numpy()), f"decay did not change d{name}"
        else:
            np.testing.assert_array_equal(g0.numpy(), g1.numpy(), err_msg=f"decay changed d{name}")


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0.0, 1.0, size=(7, 12)))
    model = SparseAutoencoder(12, 5, rho=0.2, beta=3.0, weight_decay=0.01, seed=4,
                              dtype="float64")
    # Nonzero biases so their gradients are exercised away from the initial point.
    model.b1.assign(rng.normal(0.0, 0.5, size=5))
    model.b2.assign(rng.normal(0.0, 0.5, size=12))
    _, analytic = model.gradients(x)

    step = 1e-6
    for variable, grad in zip(model.variables_in_order, analytic):
        flat = variable.numpy().ravel()
        numeric = np.empty_like(flat)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + step
            variable.assign(flat.reshape(variable.shape))
            plus = float(model.cost(x)["total"])
            flat[i] = original - step
            variable.assign(flat.reshape(variable.shape))
            minus = float(model.cost(x)["total"])
            flat[i] = original
            variable.assign(flat.reshape(variable.shape))
            numeric[i] = (plus - minus) / (2 * step)
        analytic_flat = grad.numpy().ravel()
        relative = np.linalg.norm(numeric - analytic_flat) / np.linalg.norm(numeric + analytic_flat)
        assert relative < 1e-6, f"{variable.name}: relative error {relative:.2e}"


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def train_small(x, seed=0, epochs=3):
    """Train a 784-50-784 autoencoder briefly and return the model and its history."""
    model = SparseAutoencoder(784, 50, rho=0.1, seed=seed)
    config = TrainingConfig(epochs=epochs, batch_size=50, learning_rate=5e-3, seed=seed,
                            log_every=0)
    return model, train_autoencoder(model, x, config)


def test_training_decreases_loss(mnist_slice):
    model = SparseAutoencoder(784, 50, rho=0.1, seed=0)
    before = evaluate_autoencoder(model, mnist_slice)["total"]
    model, history = train_small(mnist_slice, epochs=5)
    after = evaluate_autoencoder(model, mnist_slice)["total"]
    assert after < 0.8 * before
    costs = [row["total"] for row in history.epochs]
    assert costs[-1] < costs[0]


def test_same_seed_gives_identical_weights(mnist_slice):
    first, _ = train_small(mnist_slice, seed=7)
    second, _ = train_small(mnist_slice, seed=7)
    other, _ = train_small(mnist_slice, seed=8)
    np.testing.assert_array_equal(first.W1.numpy(), second.W1.numpy())
    assert not np.array_equal(first.W1.numpy(), other.W1.numpy())


def test_full_batch_is_one_step_per_epoch(mnist_slice):
    model = SparseAutoencoder(784, 20, rho=0.1, seed=0)
    config = TrainingConfig(epochs=2, batch_size=0, optimizer="sgd", learning_rate=0.1,
                            log_every=0)
    history = train_autoencoder(model, mnist_slice[:100], config)
    full = SparseAutoencoder(784, 20, rho=0.1, seed=0)
    # Two plain gradient steps by hand must land on the same weights.
    optimizer = make_optimizer("sgd", 0.1)
    for _ in range(2):
        _, grads = full.gradients(tf.constant(mnist_slice[:100]))
        optimizer.apply_gradients(zip(grads, full.variables_in_order))
    assert len(history.epochs) == 2
    np.testing.assert_allclose(model.W1.numpy(), full.W1.numpy(), atol=1e-6)


def test_nonfinite_loss_stops_training(mnist_slice):
    model = SparseAutoencoder(784, 20, rho=0.1, seed=0)
    config = TrainingConfig(epochs=3, batch_size=50, log_every=0)
    poisoned = mnist_slice[:200].copy()
    poisoned[120, 5] = np.nan  # in the third batch of the first epoch, whatever the order
    with pytest.raises(NonFiniteLossError, match=r"p=0\.1.*epoch 1, step \d"):
        train_autoencoder(model, poisoned, config)
