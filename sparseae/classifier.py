"""Classifiers for the semi-supervised comparison: the labelled split, the softmax layer and
the 784-200-10 network whose layers can start from pretrained weights."""

import numpy as np
import keras
import tensorflow as tf

N_CLASSES = 10


class LabelBudgetError(ValueError):
    """Raised when a digit has fewer images than the requested labels per class."""


def select_labelled(labels, per_class, seed):
    """Return sorted indices of per_class images of each digit, drawn with the given seed.

    Every other index is left for evaluation or unlabelled pretraining.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 2])
    chosen = []
    for digit in range(N_CLASSES):
        candidates = np.flatnonzero(labels == digit)
        if len(candidates) < per_class:
            raise LabelBudgetError(
                f"digit {digit} has only {len(candidates)} images, "
                f"fewer than the {per_class} labels per class requested"
            )
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def complement(indices, n):
    """Return the sorted indices in range(n) that are not in indices."""
    mask = np.ones(n, dtype=bool)
    mask[indices] = False
    return np.flatnonzero(mask)


@keras.saving.register_keras_serializable(package="sparseae")
class ArrayInitializer(keras.initializers.Initializer):
    """Initializer that returns a fixed array, for layers that start from pretrained weights.

    The requested shape must equal the array's shape exactly: a transposed
    or flattened array raises ValueError instead of being silently reshaped.
    """

    def __init__(self, value):
        self.value = np.array(value)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(size) for size in shape)
        if shape != self.value.shape:
            raise ValueError(
                f"ArrayInitializer contains an array of shape {self.value.shape}, "
                f"but the layer requested shape {shape}; pass an array of that shape "
                "(a Dense kernel is (inputs, units))"
            )
        dtype = keras.backend.standardize_dtype(dtype)
        return keras.ops.convert_to_tensor(self.value, dtype=dtype)

    def get_config(self):
        # Nested lists keep the config JSON-serializable for .keras files.
        return {"value": self.value.tolist()}


def build_network(n_hidden=200, weights=None, weight_decay=0.0, name="classifier"):
    """Return a 784-n_hidden-10 network with a sigmoid hidden layer and a softmax output.

    weights, if given, is (W1, b1, W_softmax, b_softmax), and every kernel
    and bias starts from it through ArrayInitializer. Otherwise kernels are
    Glorot uniform and biases zero. weight_decay is lambda in
    (lambda / 2) * ||W||^2 on both kernels.
    """
    if weights is None:
        initializers = ["glorot_uniform", "zeros", "glorot_uniform", "zeros"]
    else:
        initializers = [ArrayInitializer(array) for array in weights]
    regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    return keras.Sequential(
        [
            keras.Input(shape=(784,)),
            keras.layers.Dense(
                n_hidden, activation="sigmoid", name="encoder",
                kernel_initializer=initializers[0], bias_initializer=initializers[1],
                kernel_regularizer=regularizer),
            keras.layers.Dense(
                N_CLASSES, activation="softmax", name="softmax",
                kernel_initializer=initializers[2], bias_initializer=initializers[3],
                kernel_regularizer=regularizer),
        ],
        name=name,
    )


def build_softmax(n_inputs, weight_decay=0.0):
    """Return a single softmax layer from n_inputs features to the ten digits."""
    regularizer = keras.regularizers.L2(weight_decay / 2.0) if weight_decay else None
    return keras.Sequential(
        [
            keras.Input(shape=(n_inputs,)),
            keras.layers.Dense(N_CLASSES, activation="softmax", name="softmax",
                               kernel_regularizer=regularizer),
        ],
        name="softmax_on_codes",
    )


def compile_classifier(model, learning_rate, steps_per_execution=1, jit_compile="auto"):
    """Compile model with Adam, sparse cross-entropy and accuracy.

    steps_per_execution > 1 runs that many batches per call into the
    compiled graph, which removes most of the per-step Python overhead
    for small batches without changing the updates.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,
    )
    return model


def train_classifier(model, x, y, *, epochs, batch_size, learning_rate):
    """Compile model with Adam and fit it on (x, y), reshuffled every epoch.

    One graph call runs a whole epoch. The batches come from one repeated
    dataset, because given arrays, Model.fit builds a new dataset iterator
    every epoch, and for 1000 images that took about as long as the
    training steps themselves (Keras 3.15).
    """
    steps_per_epoch = -(-len(x) // batch_size)
    compile_classifier(model, learning_rate, steps_per_execution=steps_per_epoch)
    batches = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), reshuffle_each_iteration=True)
        .batch(batch_size)
        .repeat()
    )
    model.fit(batches, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False, verbose=0)
    return model


def evaluate_classifier(model, x, y, batch_size=4096):
    """Return {"loss", "accuracy"} of model on (x, y), with cross-entropy only (no penalty)."""
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return probability_scores(probabilities, y)


def probability_scores(probabilities, y):
    """Return mean cross-entropy and accuracy of predicted class probabilities against y."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    picked = np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0)
    return {
        "loss": float(-np.mean(np.log(picked))),
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == y)),
    }
