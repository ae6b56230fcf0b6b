import matplotlib.pyplot as plt
import numpy as np

from fvae.analysis import plots


def assert_picture(path):
    image = plt.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05, f"{path} looks blank"


def test_every_picture_is_written_and_not_blank(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(16, 784))
    names = ["Coat"] * 16
    plots.save_image_grid(tmp_path / "grid.png", images, "grid", labels=names)
    plots.save_reconstructions(tmp_path / "recon.png", images[:8], images[8:], labels=names[:8])
    plots.save_interpolations(tmp_path / "interp.png", rng.uniform(size=(3, 6, 784)), ["A"] * 3, ["B"] * 3)
    plots.save_traversals(tmp_path / "trav.png", rng.uniform(size=(4, 5, 784)), np.linspace(-2, 2, 5),
                          [0, 1, 2, 3], [1.0, 0.5, 0.2, 0.1])
    plots.save_manifold(tmp_path / "manifold.png", rng.uniform(size=(5, 5, 784)), np.linspace(-1.6, 1.6, 5))
    plots.save_latent_scatter(tmp_path / "scatter.png", rng.normal(size=(300, 2)), rng.integers(0, 10, 300),
                              [str(i) for i in range(10)], "scatter")
    history = [{"epoch": e, "train_loss": 300 - e, "val_loss": 301 - e, "train_reconstruction": 280 - e,
                "val_reconstruction": 281 - e, "train_kl": 20 + e, "val_kl": 20 + e} for e in range(1, 6)]
    plots.save_training_curves(tmp_path / "curves.png", history, best_epoch=4)
    plots.overlay_curves({"a": history, "b": history[:3]}, "val_loss", path=tmp_path / "overlay.png")
    for name in ("grid", "recon", "interp", "trav", "manifold", "scatter", "curves", "overlay"):
        assert_picture(tmp_path / f"{name}.png")


def test_mosaic_places_tiles_row_by_row():
    tiles = np.zeros((2, 3, 784))
    tiles[1, 2] = 1.0
    mosaic = plots._mosaic(tiles)
    assert mosaic.shape == (56, 84)
    assert mosaic[28:, 56:].min() == 1.0 and mosaic[:28].max() == 0.0


def test_grid_canvas_puts_image_i_at_row_i_div_columns_and_column_i_mod_columns():
    images = np.stack([np.full((28, 28), i / 10) for i in range(7)])
    canvas, (pitch_y, pitch_x) = plots._grid_canvas(images, columns=3, band=9)
    assert canvas.shape == (3 * pitch_y, 3 * pitch_x) and (pitch_y, pitch_x) == (39, 30)
    for i in range(7):
        top, left = (i // 3) * pitch_y + 9, (i % 3) * pitch_x
        assert np.all(canvas[top:top + 28, left:left + 28] == np.float32(i / 10))
    assert (canvas != 1).sum() == 7 * 784  # Everything else is white.
