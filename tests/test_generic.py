"""Tests of the mosaics and of the sparsity sweep script, end to end on a small MNIST slice."""

import json

import matplotlib.image
import numpy as np
import pytest

from sparseae.mosaic import BORDER, TILE, ZOOM, save_mosaic, tile_mosaic
from scripts import load_script

MOSAIC_SIDE = ZOOM * (10 * (TILE + BORDER) + BORDER)


def test_mosaic_places_tiles_row_by_row():
    tiles = np.zeros((3, 784), dtype=np.uint8)
    tiles[1] = 255  # second tile, first row
    mosaic = tile_mosaic(tiles, rows=2, cols=2)
    assert mosaic.shape == (2 * (TILE + BORDER) + BORDER,) * 2
    top, left = BORDER, BORDER + TILE + BORDER
    assert np.all(mosaic[top : top + TILE, left : left + TILE] == 1.0)
    assert mosaic.sum() == TILE * TILE


def test_weight_tiles_scaled_each_on_its_own():
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(2, 784)) * np.array([[1.0], [1000.0]])
    mosaic = tile_mosaic(tiles, rows=1, cols=2, mode="weights")
    for index in range(2):
        left = BORDER + index * (TILE + BORDER)
        tile = mosaic[BORDER : BORDER + TILE, left : left + TILE]
        assert tile.min() >= 0.0
        assert tile.max() <= 1.0
        # Each tile reaches one end of the grey range, whatever its own scale.
        assert max(tile.max() - 0.5, 0.5 - tile.min()) == pytest.approx(0.5)


def test_mosaic_png_has_expected_size(tmp_path, mnist_slice):
    path = tmp_path / "X.png"
    save_mosaic(path, mnist_slice[:100])
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (MOSAIC_SIDE, MOSAIC_SIDE)
    assert not np.isnan(image).any()
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_mosaic_rejects_nan(tmp_path):
    tiles = np.full((4, 784), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        save_mosaic(tmp_path / "bad.png", tiles, mode="images")
    assert not (tmp_path / "bad.png").exists()


def test_mosaic_rejects_wrong_tile_size():
    with pytest.raises(ValueError, match="784 pixels"):
        tile_mosaic(np.zeros((4, 100)))


def test_script_writes_mosaics_and_results(tmp_path, capsys):
    script = load_script("sparseae_generic")
    argv = ["--sparsities", "0.1", "0.5", "--train-size", "300", "--epochs", "2",
            "--hidden", "100", "--out", str(tmp_path), "--log-every", "0"]
    assert script.main(argv) == 0

    for tag in ("0.1", "0.5"):
        for prefix in ("W1", "X", "X_hat"):
            image = matplotlib.image.imread(tmp_path / f"{prefix}_{tag}.png")
            assert image.shape[:2] == (MOSAIC_SIDE, MOSAIC_SIDE), f"{prefix}_{tag}"
            assert not np.isnan(image).any()
    assert (tmp_path / "p_hat_histograms.png").stat().st_size > 0
    assert (tmp_path / "sparsity_summary.png").stat().st_size > 0

    results = json.loads((tmp_path / "results_generic.json").read_text())
    assert results["complete"] is True
    assert [row["p"] for row in results["runs"]] == [0.1, 0.5]
    for row in results["runs"]:
        assert len(row["rho_hat"]) == 100
        assert row["mean_rho_hat"] == pytest.approx(np.mean(row["rho_hat"]), rel=1e-6)
        terms = row["reconstruction"] + row["weight_penalty"] + row["sparsity_penalty"]
        assert row["J"] == pytest.approx(terms, rel=1e-5)
        assert 0 <= row["dead_units"] <= 100
        assert len(row["epoch_costs"]) == 2

    table = capsys.readouterr().out
    assert "mean p_hat" in table
    assert len(table.strip().splitlines()) == 4  # header, rule, one line per p


def test_script_original_regime_sets_full_batch_sgd():
    script = load_script("sparseae_generic")
    args, _ = script.parse_args(["--original"])
    assert (args.optimizer, args.learning_rate, args.batch_size) == ("sgd", 0.1, 0)
    assert (args.epochs, args.train_size) == (400, 6000)


@pytest.mark.parametrize("name", ["sparseae_generic", "sparseae_semiSupervisedLearning"])
def test_help_describes_every_option(name, capsys):
    script = load_script(name)
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--seed", "--data", "--out", "--learning-rate", "--beta"):
        assert option in text
    assert "(default: None)" not in text


def test_original_regime_keeps_explicit_options():
    script = load_script("sparseae_generic")
    args, _ = script.parse_args(["--original", "--epochs", "3", "--train-size=500"])
    assert (args.epochs, args.train_size) == (3, 500)
    assert (args.optimizer, args.batch_size) == ("sgd", 0)


def test_repeated_sparsities_run_once():
    script = load_script("sparseae_generic")
    args, _ = script.parse_args(["--sparsities", "0.1", "0.5", "0.1"])
    assert args.sparsities == [0.1, 0.5]
