"""The one full-resolution apply (numpy, srin_cli.colour) against the torch arithmetic it replaced, on both backends."""
import numpy as np
import pytest
import torch

from srin_cli.colour import apply_transform
from srin_cli.modeling.unet import apply_affine

from conftest import blob_image


def torch_apply(params: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The reference in torch: grid_sample to full size, apply_affine, blend (float, before rounding)."""
    h, w = image.shape[:2]
    t = torch.from_numpy(params)[None]
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * 2 / w - 1
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * 2 / h - 1
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij")[::-1], dim=-1)[None]
    sampled = torch.nn.functional.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    band = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    harmonized = apply_affine(sampled, band)[0].permute(1, 2, 0).mul(255).numpy()
    m = mask[..., None]
    return harmonized * m + image.astype(np.float32) * (1 - m)


@pytest.mark.parametrize("shape,low", [((64, 64), (32, 32)), ((37, 91), (32, 32)), ((301, 199), (64, 64)), ((1, 1), (8, 8)),
                                       ((5, 700), (16, 16))])
def test_numpy_apply_matches_torch(shape, low):
    rng = np.random.default_rng(sum(shape))
    image = blob_image(rng, *shape) if min(shape) > 3 else rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    params = rng.normal(0, 0.2, (12, *low)).astype(np.float32)
    mask = np.clip(rng.uniform(-0.5, 1.5, shape), 0, 1).astype(np.float32)
    mask[: shape[0] // 3] = 0
    if not (mask > 0).any():
        mask[...] = 1
    expected = torch_apply(params, image, mask)
    got = apply_transform(params, image, mask)
    assert got.dtype == np.uint8 and got.shape == image.shape
    assert np.abs(got.astype(np.float32) - expected).max() <= 0.5 + 1e-3  # the same value, rounded
    assert np.array_equal(got[mask == 0], image[mask == 0])
    # tiles of any size give the same bytes, on one thread or several
    assert np.array_equal(apply_transform(params, image, mask, tile_pixels=7, threads=1), got)
    assert np.array_equal(apply_transform(params, image, mask, tile_pixels=7, threads=3), got)


def test_tiles_on_a_thread_pool_give_the_same_bytes(monkeypatch):
    """A photo of many tiles goes to a thread pool (each tile writes its own rows): same result as one thread,
    and an error in a tile reaches the caller."""
    import srin_cli.colour as colour

    rng = np.random.default_rng(5)
    image = blob_image(rng, 240, 180)
    params = rng.normal(0, 0.2, (12, 16, 16)).astype(np.float32)
    mask = np.clip(rng.uniform(-0.5, 1.5, (240, 180)), 0, 1).astype(np.float32)
    one = apply_transform(params, image, mask, tile_pixels=1000, threads=1)
    assert np.array_equal(apply_transform(params, image, mask, tile_pixels=1000, threads=4), one)
    used = []
    real_tile = colour._apply_tile

    def spy(*args):
        import threading

        used.append(threading.get_ident())
        return real_tile(*args)

    monkeypatch.setattr(colour, "_apply_tile", spy)
    assert np.array_equal(apply_transform(params, image, mask, tile_pixels=1000, threads=4), one)
    assert len(used) >= colour.PARALLEL_TILES and threading_main() not in used

    def broken(*args):
        raise RuntimeError("tile failed")

    monkeypatch.setattr(colour, "_apply_tile", broken)
    with pytest.raises(RuntimeError, match="tile failed"):
        apply_transform(params, image, mask, tile_pixels=1000, threads=4)


def threading_main() -> int:
    import threading

    return threading.main_thread().ident


def test_identity_transform_changes_nothing():
    rng = np.random.default_rng(0)
    image = blob_image(rng, 50, 70)
    assert np.array_equal(apply_transform(np.zeros((12, 8, 8), np.float32), image, np.ones((50, 70), np.float32)), image)
    assert np.array_equal(apply_transform(np.ones((12, 8, 8), np.float32), image, np.zeros((50, 70), np.float32)), image)


def test_both_backends_use_the_numpy_apply(tiny_checkpoint, monkeypatch):
    """ONNX Runtime and PyTorch backends hand their transforms to srin_cli.colour.apply_transform."""
    from srin_cli import harmonizer

    calls = []
    monkeypatch.setattr(harmonizer, "apply_transform", lambda *a, **k: calls.append(a) or apply_transform(*a, **k))
    rng = np.random.default_rng(1)
    image, mask = blob_image(rng, 40, 60), np.zeros((40, 60), np.float32)
    mask[10:30, 20:40] = 1
    h = harmonizer.Harmonizer.from_checkpoint(tiny_checkpoint, "cpu", backend="torch")
    h(image, mask)
    assert len(calls) == 1 and isinstance(calls[0][0], np.ndarray)


def reference_apply(params: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The apply as it was without the fused, in-place tiles: whole-box coefficient planes, then
    the blend (:func:`srin_cli.colour.blend`'s arithmetic) and a copy of the input wherever m <= 0."""
    from srin_cli.colour import _source

    params = np.asarray(params, np.float32)
    out = image.copy()
    fg = mask > 0
    if not fg.any():
        return out
    (H, W), (h, w) = image.shape[:2], params.shape[1:]
    ys, xs = np.nonzero(fg.any(axis=1))[0], np.nonzero(fg.any(axis=0))[0]
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    c0, c1, wx = _source(W, w, x0, x1)
    along_x = params[:, :, c0] * (1 - wx) + params[:, :, c1] * wx
    r0, r1, wy = _source(H, h, y0, y1)
    wy = wy[None, :, None]
    coef = along_x[:, r0] * (1 - wy) + along_x[:, r1] * wy
    band = image[y0:y1, x0:x1]
    planes = band.transpose(2, 0, 1).astype(np.float32) * np.float32(1 / 255)
    harmonized = np.empty(band.shape, np.float32)
    for c in range(3):
        acc = planes[c] + coef[9 + c]
        for j in range(3):
            acc += coef[3 * c + j] * planes[j]
        harmonized[..., c] = np.clip(acc, 0, 1)
    harmonized *= 255
    m = np.asarray(mask[y0:y1, x0:x1], np.float32)[..., None]
    blended = np.clip(harmonized * m + band.astype(np.float32) * (1 - m) + np.float32(0.5), 0, 255).astype(np.uint8)
    np.copyto(blended, band, where=m <= 0)
    out[y0:y1, x0:x1] = blended
    return out


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the NaN cases
def test_fused_in_place_apply_gives_the_bytes_of_before():
    """The tiles (coefficients made one plane at a time, the blend fused in, written into the input when asked) give
    the same bytes as the whole-box arithmetic of before: any size against the transform's (long and short runs of
    rows sharing their source rows), any tile size and thread count, soft, hard, out-of-range and float64 masks,
    non-finite transforms."""
    rng = np.random.default_rng(15)
    for trial in range(60):
        H, W, h, w = (int(v) for v in rng.integers(1, 160, 2).tolist() + rng.integers(1, 40, 2).tolist())
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        params = rng.normal(0, [0.1, 0.5, 3][trial % 3], (12, h, w)).astype(np.float32)
        mask = np.clip(rng.uniform(-0.5, 1.5, (H, W)), 0, 1).astype(np.float32)
        kind = trial % 5
        if kind == 1:
            mask = (mask > 0.5).astype(np.float64)
        elif kind == 2:
            mask = rng.uniform(-0.3, 1.3, (H, W)).astype(np.float32)  # outside [0, 1]: clipped, m <= 0 kept
        elif kind == 3:
            params[rng.integers(12), rng.integers(h), rng.integers(w)] = [np.nan, np.inf][trial % 2]
        expected = reference_apply(params, image, mask)
        tiles = int(rng.choice([7, 500, 1 << 18]))
        assert np.array_equal(apply_transform(params, image, mask, tile_pixels=tiles, threads=int(rng.integers(1, 4))),
                              expected), trial
        buffer = image.copy()
        assert apply_transform(params, buffer, mask, tile_pixels=tiles, in_place=True) is buffer
        assert np.array_equal(buffer, expected), trial


def test_in_place_needs_a_writable_buffer():
    rng = np.random.default_rng(3)
    image = blob_image(rng, 40, 30)
    params = rng.normal(0, 0.2, (12, 8, 8)).astype(np.float32)
    mask = np.ones((40, 30), np.float32)
    expected = apply_transform(params, image, mask)
    image.flags.writeable = False  # a read-only buffer (a view of bytes, say) gets a copy, not an error
    got = apply_transform(params, image, mask, in_place=True)
    assert got is not image and np.array_equal(got, expected)


def test_harmonizer_in_place_writes_into_the_composite(tiny_checkpoint):
    """What harmonize does with a composite it has just read: the result in its buffer, the same bytes."""
    from srin_cli import harmonizer

    rng = np.random.default_rng(2)
    image, mask = blob_image(rng, 50, 70), np.zeros((50, 70), np.float32)
    mask[10:40, 20:50] = 0.7
    h = harmonizer.Harmonizer.from_checkpoint(tiny_checkpoint, "cpu", backend="torch")
    expected = h(image, mask)
    buffer = image.copy()
    assert h(buffer, mask, in_place=True) is buffer and np.array_equal(buffer, expected)
    empty = np.zeros_like(mask)
    assert h(buffer, empty, in_place=True) is buffer and h(buffer, empty) is not buffer
