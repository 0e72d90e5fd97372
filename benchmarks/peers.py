"""Two other implementations of the sparse autoencoder's training, to compare ours against.

Both minimise the cost J of sparseae.autoencoder with Adam, from the same
initial weights and on the same batches:

  KerasSparseAutoencoder   Keras Model.fit, with the KL term as an activity
                           regularizer on the hidden layer and the weight
                           decay as L2 kernel regularizers;
  NumpySparseAutoencoder   plain numpy, with hand-written backpropagation and
                           Adam.
"""

import math
import time

import keras
import numpy as np
from keras import ops

from sparseae.autoencoder import RHO_HAT_EPSILON, kl_divergence, mean_activation


# ---------------------------------------------------------------------------
# Keras Model.fit
# ---------------------------------------------------------------------------


class BatchMeanKL(keras.regularizers.Regularizer):
    """Activity regularizer beta * sum_j KL(rho || rho_hat_j), rho_hat over the batch."""

    def __init__(self, rho, beta):
        self.rho = rho
        self.beta = beta

    def __call__(self, activations):
        rho_hat = mean_activation(activations)
        penalty = self.beta * ops.sum(kl_divergence(self.rho, rho_hat))
        # Keras 3.15 divides every activity regularizer's value by the batch
        # size (keras/src/layers/layer.py), but this penalty is already a
        # function of the whole batch, so the division is undone here.
        batch_size = ops.cast(ops.shape(activations)[0], penalty.dtype)
        return penalty * batch_size

    def get_config(self):
        return {"rho": self.rho, "beta": self.beta}


def per_image_squared_error(x, x_hat):
    """Return ||x_i - x_hat_i||^2 per image; Model.fit averages it over the batch."""
    return ops.sum(ops.square(x - x_hat), axis=-1)


def build_keras_autoencoder(weights, *, rho, beta, weight_decay):
    """Return an uncompiled Keras model whose loss plus penalties is J.

    weights is (W1, b1, W2, b2) with W1 of shape (n_visible, n_hidden), as in
    SparseAutoencoder. L2(weight_decay / 2) gives (lambda / 2) * ||W||_F^2.
    """
    w1, b1, w2, b2 = (np.asarray(array) for array in weights)
    n_visible, n_hidden = w1.shape
    decay = keras.regularizers.L2(weight_decay / 2.0)
    model = keras.Sequential(
        [
            keras.Input(shape=(n_visible,)),
            keras.layers.Dense(n_hidden, activation="sigmoid", name="encoder",
                               kernel_regularizer=decay,
                               activity_regularizer=BatchMeanKL(rho, beta)),
            keras.layers.Dense(n_visible, activation="sigmoid", name="decoder",
                               kernel_regularizer=decay),
        ],
        name="keras_sparse_autoencoder",
    )
    model.get_layer("encoder").set_weights([w1, b1])
    model.get_layer("decoder").set_weights([w2, b2])
    return model


def keras_total_loss(model, x):
    """Return the batch loss that Model.fit minimises on x: reconstruction plus all penalties."""
    x_hat = model(x, training=True)
    reconstruction = ops.mean(per_image_squared_error(x, x_hat))
    return float(reconstruction + ops.sum(ops.stack(model.losses)))


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch of the fit calls it is passed to."""

    def __init__(self):
        super().__init__()
        self.seconds = []
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._epoch_start)


class KerasSparseAutoencoder:
    """Trains the Keras form of the sparse autoencoder with Model.fit and default compile settings."""

    def __init__(self, weights, *, rho, beta, weight_decay, learning_rate):
        self.model = build_keras_autoencoder(
            weights, rho=rho, beta=beta, weight_decay=weight_decay)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                           loss=per_image_squared_error)
        self.timer = EpochTimer()

    def train_epoch(self, x, batch_size):
        """Run one epoch of Model.fit on shuffled x; return its wall time in seconds.

        The time runs from the start to the end of the epoch, so it leaves out
        fit's once-per-call setup but keeps its per-epoch shuffling and
        dataset iterator.
        """
        self.model.fit(x, x, batch_size=batch_size, epochs=1, shuffle=True, verbose=0,
                       callbacks=[self.timer])
        return self.timer.seconds[-1]


# ---------------------------------------------------------------------------
# Plain numpy
# ---------------------------------------------------------------------------


def sigmoid(z):
    """Return 1 / (1 + exp(-z)), computed as 0.5 * (1 + tanh(z / 2)) so no exp overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class NumpySparseAutoencoder:
    """The sparse autoencoder's cost, its gradients by hand and Adam, in numpy alone.

    Arrays keep the dtype of the initial weights, so float32 weights give a
    float32 computation. The Adam update is the one of keras.optimizers.Adam
    (Keras 3): epsilon is added to sqrt(v), and the bias corrections are
    folded into the step size.
    """

    def __init__(self, weights, *, rho, beta, weight_decay, learning_rate,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.params = [np.array(array) for array in weights]
        self.rho = rho
        self.beta = beta
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.first_moments = [np.zeros_like(param) for param in self.params]
        self.second_moments = [np.zeros_like(param) for param in self.params]
        self.iterations = 0

    def cost_and_gradients(self, x):
        """Return (J and its terms as floats, gradients of J for W1, b1, W2, b2)."""
        w1, b1, w2, b2 = self.params
        m = x.shape[0]
        rho = self.rho

        a1 = sigmoid(x @ w1 + b1)
        x_hat = sigmoid(a1 @ w2 + b2)
        rho_hat = a1.mean(axis=0)
        # The gradient stops where the clip is active, as tf.clip_by_value's does.
        inside_clip = (rho_hat >= RHO_HAT_EPSILON) & (rho_hat <= 1.0 - RHO_HAT_EPSILON)
        rho_hat = np.clip(rho_hat, RHO_HAT_EPSILON, 1.0 - RHO_HAT_EPSILON)

        error = x_hat - x
        reconstruction = float(np.sum(np.square(error))) / m
        weight_penalty = (self.weight_decay / 2.0) * float(np.sum(np.square(w1))
                                                             + np.sum(np.square(w2)))
        kl = rho * np.log(rho / rho_hat) + (1.0 - rho) * np.log((1.0 - rho) / (1.0 - rho_hat))
        sparsity_penalty = self.beta * float(np.sum(kl))

        # Backpropagation: delta2 and delta1 are dJ/dz at the output and
        # hidden pre-activations. The KL term reaches every row of a1
        # through rho_hat, the mean over the m rows.
        delta2 = (2.0 / m) * error * x_hat * (1.0 - x_hat)
        dkl_drho_hat = (-rho / rho_hat + (1.0 - rho) / (1.0 - rho_hat)) * inside_clip
        da1 = delta2 @ w2.T + (self.beta / m) * dkl_drho_hat
        delta1 = da1 * a1 * (1.0 - a1)

        grads = [
            x.T @ delta1 + self.weight_decay * w1,
            delta1.sum(axis=0),
            a1.T @ delta2 + self.weight_decay * w2,
            delta2.sum(axis=0),
        ]
        terms = {
            "total": reconstruction + weight_penalty + sparsity_penalty,
            "reconstruction": reconstruction,
            "weight_penalty": weight_penalty,
            "sparsity_penalty": sparsity_penalty,
        }
        return terms, grads

    def apply_adam(self, grads):
        """Update the weights in place by one Adam step."""
        self.iterations += 1
        t = self.iterations
        step_size = (self.learning_rate * math.sqrt(1.0 - self.beta_2**t)
                     / (1.0 - self.beta_1**t))
        for param, grad, m, v in zip(self.params, grads, self.first_moments,
                                     self.second_moments):
            m += (grad - m) * (1.0 - self.beta_1)
            v += (np.square(grad) - v) * (1.0 - self.beta_2)
            param -= step_size * m / (np.sqrt(v) + self.epsilon)

    def train_epoch(self, x, batch_size, rng):
        """Run one epoch of Adam steps over x in an order drawn from rng; return the mean J."""
        n = len(x)
        shuffled = x[rng.permutation(n)] if batch_size < n else x
        total = 0.0
        steps = 0
        for start in range(0, n, batch_size):
            terms, grads = self.cost_and_gradients(shuffled[start:start + batch_size])
            self.apply_adam(grads)
            total += terms["total"]
            steps += 1
        return total / steps
