"""Shared code of the sparse autoencoder scripts: MNIST loading, the model, mosaics and outputs."""

import os

# TensorFlow's C++ start-up messages (CPU features, oneDNN, a harmless tf.data
# attribute warning in 2.21) would bury the progress lines. This must be set
# before TensorFlow is first imported; an explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
