"""Shared fixtures: small real slices of the MNIST files shipped in data/mnist."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from sparseae.data import load_mnist  # noqa: E402


@pytest.fixture(scope="session")
def mnist():
    """The shipped MNIST arrays, loaded once per test run."""
    return load_mnist()


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """The first 500 training images as float32 rows in [0, 1]."""
    (x_train, _), _ = mnist
    return x_train[:500].reshape(500, -1).astype("float32") / 255.0
