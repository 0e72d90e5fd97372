"""Shared code of the sparse autoencoder scripts: MNIST loading, the model, mosaics and outputs."""
