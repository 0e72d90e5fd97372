"""Mosaics of 28x28 tiles (weights, images, reconstructions) saved as greyscale PNG files."""

import matplotlib

# Scripts run on servers without a display: never pick an interactive backend.
matplotlib.use("Agg")

import matplotlib.image  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from .outputs import atomic_write  # noqa: E402

TILE = 28
BORDER = 1  # pixels of black between tiles
ZOOM = 2  # each pixel becomes ZOOM x ZOOM so the PNG is readable at normal size


def scale_tiles(tiles, mode):
    """Map each tile to [0, 1] for display.

    mode "weights": subtract the tile's mean and divide by its max absolute
    value, so mid-grey is the tile's mean weight and every tile uses the full
    range. mode "images": divide by 255 if the values are bytes, else clip to
    [0, 1], so that inputs and reconstructions share one scale.
    """
    tiles = np.asarray(tiles)
    if mode == "weights":
        centred = tiles.astype(np.float64) - tiles.mean(axis=1, keepdims=True)
        peak = np.abs(centred).max(axis=1, keepdims=True)
        peak[peak == 0] = 1.0
        return 0.5 + 0.5 * centred / peak
    if mode == "images":
        if tiles.dtype == np.uint8:
            return tiles / 255.0
        return np.clip(tiles.astype(np.float64), 0.0, 1.0)
    raise ValueError(f"unknown scale mode {mode!r}; expected 'weights' or 'images'")


def tile_mosaic(tiles, rows=10, cols=10, mode="images"):
    """Arrange up to rows*cols flattened 28x28 tiles, row by row, into one 2-D array in [0, 1]."""
    tiles = np.asarray(tiles).reshape(len(tiles), -1)
    if tiles.shape[1] != TILE * TILE:
        raise ValueError(f"tiles must have {TILE * TILE} pixels each, got {tiles.shape[1]}")
    if len(tiles) > rows * cols:
        raise ValueError(f"{len(tiles)} tiles do not fit a {rows}x{cols} mosaic")
    scaled = scale_tiles(tiles, mode)

    step = TILE + BORDER
    mosaic = np.zeros((rows * step + BORDER, cols * step + BORDER))
    for index, tile in enumerate(scaled):
        top = BORDER + (index // cols) * step
        left = BORDER + (index % cols) * step
        mosaic[top : top + TILE, left : left + TILE] = tile.reshape(TILE, TILE)
    return mosaic


def save_mosaic(path, tiles, rows=10, cols=10, mode="images"):
    """Save tiles as a greyscale PNG mosaic at path, atomically; return the pixel array written."""
    mosaic = tile_mosaic(tiles, rows, cols, mode)
    mosaic = np.kron(mosaic, np.ones((ZOOM, ZOOM)))
    if not np.isfinite(mosaic).all():
        raise ValueError(f"mosaic for {path} contains NaN or infinite values")
    with atomic_write(path) as handle:
        matplotlib.image.imsave(handle, mosaic, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return mosaic
