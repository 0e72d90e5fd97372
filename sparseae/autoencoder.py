"""Sparse autoencoder: the cost function, in UFLDL's notation, and its training loop.

The network is A1 = sigmoid(x W1 + b1), x_hat = sigmoid(A1 W2 + b2), with one
sample per row of x. W1 therefore has shape (n_visible, n_hidden): column j of
W1 contains the input weights of hidden unit j, which the MATLAB original stores
as row j of its (n_hidden, n_visible) W1.

The cost over a batch of M samples is

    J = (1/M) sum_i ||x_i - x_hat_i||^2
        + (weight_decay / 2) (||W1||_F^2 + ||W2||_F^2)
        + beta sum_j KL(rho || rho_hat_j)

where rho_hat_j is the mean activation of hidden unit j over the M samples.
"""

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
import keras

log = logging.getLogger(__name__)

# rho_hat is clipped this far from 0 and 1 before the logarithms, so that a
# saturated hidden unit (activation exactly 0.0 or 1.0 in float32) gives a
# large but finite KL term instead of inf or NaN.
RHO_HAT_EPSILON = 1e-7

OPTIMIZERS = ("adam", "sgd")
COST_TERMS = ("total", "reconstruction", "weight_penalty", "sparsity_penalty")


def kl_divergence(rho, rho_hat):
    """Return the Bernoulli KL divergence KL(rho || rho_hat), elementwise."""
    rho_hat = tf.convert_to_tensor(rho_hat)
    # The dtype hint keeps a Python float rho exact in float64 models instead
    # of rounding it through float32 first.
    rho = tf.cast(tf.convert_to_tensor(rho, dtype_hint=rho_hat.dtype), rho_hat.dtype)
    rho_hat = tf.clip_by_value(rho_hat, RHO_HAT_EPSILON, 1.0 - RHO_HAT_EPSILON)
    return rho * tf.math.log(rho / rho_hat) + (1.0 - rho) * tf.math.log(
        (1.0 - rho) / (1.0 - rho_hat)
    )


def mean_activation(a1):
    """Return rho_hat: the mean activation of each hidden unit over the samples (axis 0)."""
    return tf.reduce_mean(a1, axis=0)


def glorot_uniform(rng, fan_in, fan_out, dtype):
    """Draw a (fan_in, fan_out) Glorot/Xavier uniform matrix from a numpy Generator."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


class SparseAutoencoder(tf.Module):
    """A one-hidden-layer sigmoid autoencoder with weight decay and a KL sparsity penalty."""

    def __init__(
        self,
        n_visible=784,
        n_hidden=200,
        *,
        rho=0.1,
        beta=3.0,
        weight_decay=1e-3,
        seed=0,
        dtype="float32",
    ):
        super().__init__(name="sparse_autoencoder")
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.rho = rho
        self.beta = beta
        self.weight_decay = weight_decay
        self.dtype = tf.as_dtype(dtype)

        # numpy draws the initial weights so that a seed means the same
        # numbers whatever TensorFlow's global random state is.
        rng = np.random.default_rng(seed)
        np_dtype = self.dtype.as_numpy_dtype
        self.W1 = tf.Variable(glorot_uniform(rng, n_visible, n_hidden, np_dtype), name="W1")
        self.b1 = tf.Variable(np.zeros(n_hidden, np_dtype), name="b1")
        self.W2 = tf.Variable(glorot_uniform(rng, n_hidden, n_visible, np_dtype), name="W2")
        self.b2 = tf.Variable(np.zeros(n_visible, np_dtype), name="b2")

    @property
    def variables_in_order(self):
        """The trainable variables as (W1, b1, W2, b2)."""
        return [self.W1, self.b1, self.W2, self.b2]

    def encode(self, x):
        """Return the hidden activations A1 for a batch of inputs in [0, 1]."""
        return tf.sigmoid(tf.matmul(x, self.W1) + self.b1)

    def decode(self, a1):
        """Return the reconstruction x_hat from hidden activations."""
        return tf.sigmoid(tf.matmul(a1, self.W2) + self.b2)

    def cost(self, x):
        """Return J and its three terms for the batch x, as a dict of scalar tensors."""
        a1 = self.encode(x)
        x_hat = self.decode(a1)
        rho_hat = mean_activation(a1)

        reconstruction = tf.reduce_mean(tf.reduce_sum(tf.square(x - x_hat), axis=1))
        return self.combine_terms(reconstruction, rho_hat)

    def combine_terms(self, reconstruction, rho_hat):
        """Add the weight and sparsity penalties to a reconstruction error; return all terms."""
        weight_penalty = (self.weight_decay / 2.0) * (
            tf.reduce_sum(tf.square(self.W1)) + tf.reduce_sum(tf.square(self.W2))
        )
        sparsity_penalty = self.beta * tf.reduce_sum(kl_divergence(self.rho, rho_hat))
        return {
            "total": reconstruction + weight_penalty + sparsity_penalty,
            "reconstruction": reconstruction,
            "weight_penalty": weight_penalty,
            "sparsity_penalty": sparsity_penalty,
        }

    def gradients(self, x):
        """Return (cost terms, gradients of J with respect to W1, b1, W2, b2)."""
        with tf.GradientTape() as tape:
            terms = self.cost(x)
        return terms, tape.gradient(terms["total"], self.variables_in_order)


class NonFiniteLossError(RuntimeError):
    """Raised when J becomes NaN or infinite during training."""


@dataclass
class TrainingConfig:
    """Optimizer settings for train_autoencoder."""

    epochs: int = 30
    batch_size: int = 128  # 0 means full batch: one step per epoch on all images
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    seed: int = 0
    log_every: int = 1  # epochs between progress lines; 0 silences them


@dataclass
class TrainingHistory:
    """Mean cost terms over the steps of each epoch, and the wall time of training."""

    epochs: list = field(default_factory=list)
    seconds: float = 0.0


def make_optimizer(name, learning_rate):
    """Return a Keras optimizer by name: "adam" or "sgd" (plain gradient descent)."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")


def build_train_epoch(model, optimizer, batch_size):
    """Return a compiled function that runs one epoch of minibatch steps over shuffled inputs.

    The whole epoch runs as one graph, so Python adds no overhead per step. It
    stops at the first step whose J is not finite and returns that step's
    index (or -1) with the mean cost terms of the steps taken.
    """
    variables = model.variables_in_order

    # XLA fuses the many small elementwise ops of the backward pass and of
    # the Adam update, which TensorFlow otherwise runs one kernel at a time.
    # At batch 256 on 2 CPU cores they took about as long as the five
    # matrix products (TensorFlow 2.21). The epoch loop stays outside XLA,
    # because compiled whole it ran about 5x slower.
    gradients = tf.function(model.gradients, jit_compile=True)

    @tf.function(jit_compile=True)
    def apply_gradients(grads):
        optimizer.apply_gradients(zip(grads, variables))

    @tf.function
    def train_epoch(x):
        n = tf.shape(x)[0]
        n_steps = (n + batch_size - 1) // batch_size
        sums = {name: tf.zeros((), model.dtype) for name in COST_TERMS}
        bad_step = tf.constant(-1)
        steps_taken = tf.constant(0)
        for step in tf.range(n_steps):
            batch = x[step * batch_size : tf.minimum((step + 1) * batch_size, n)]
            terms, grads = gradients(batch)
            if not tf.math.is_finite(terms["total"]):
                bad_step = step
                break
            apply_gradients(grads)
            sums = {name: sums[name] + terms[name] for name in sums}
            steps_taken += 1
        count = tf.cast(tf.maximum(steps_taken, 1), model.dtype)
        return {name: value / count for name, value in sums.items()}, bad_step

    return train_epoch


def train_autoencoder(model, x, config):
    """Train all four variables of model on x (floats in [0, 1]), one row per image.

    Raises NonFiniteLossError naming rho, the epoch and the step if J stops
    being finite; the model is then left as it was before that step.
    """
    x = tf.convert_to_tensor(x, dtype=model.dtype)
    n = int(x.shape[0])
    batch_size = n if config.batch_size in (0, None) else min(config.batch_size, n)
    optimizer = make_optimizer(config.optimizer, config.learning_rate)
    train_epoch = build_train_epoch(model, optimizer, batch_size)

    # The order of the samples is drawn from its own generator, so that the
    # data order and the initial weights can be reproduced independently.
    rng = np.random.default_rng([config.seed, 1])
    history = TrainingHistory()
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        # A full batch is used in its stored order, so it needs no shuffled copy.
        epoch_x = tf.gather(x, rng.permutation(n)) if batch_size < n else x
        means, bad_step = train_epoch(epoch_x)
        bad_step = int(bad_step)
        if bad_step >= 0:
            raise NonFiniteLossError(
                f"training diverged for p={model.rho}: the cost J became NaN or infinite "
                f"at epoch {epoch}, step {bad_step + 1}; try a smaller --learning-rate"
            )
        row = {name: float(value) for name, value in means.items()}
        history.epochs.append(row)
        if config.log_every and (epoch % config.log_every == 0 or epoch == config.epochs):
            log.info(
                "p=%g epoch %d/%d  J=%.4f  reconstruction=%.4f  weight=%.4f  sparsity=%.4f",
                model.rho, epoch, config.epochs, row["total"], row["reconstruction"],
                row["weight_penalty"], row["sparsity_penalty"],
            )
    history.seconds = time.perf_counter() - start
    return history


def evaluate_autoencoder(model, x, batch_size=10000):
    """Return J, its terms, the per-unit rho_hat and the reconstruction error over all of x.

    rho_hat is averaged over every row of x, so the sparsity term here is the
    one for the whole set, not a mean of per-batch terms.
    """
    x = tf.convert_to_tensor(x, dtype=model.dtype)
    n = int(x.shape[0])
    activation_sum = tf.zeros(model.n_hidden, model.dtype)
    squared_error_sum = tf.zeros((), model.dtype)
    for start in range(0, n, batch_size):
        batch = x[start : start + batch_size]
        a1 = model.encode(batch)
        activation_sum += tf.reduce_sum(a1, axis=0)
        squared_error_sum += tf.reduce_sum(tf.square(batch - model.decode(a1)))
    rho_hat = activation_sum / n
    terms = model.combine_terms(squared_error_sum / n, rho_hat)
    result = {name: float(value) for name, value in terms.items()}
    result["rho_hat"] = rho_hat.numpy()
    return result
