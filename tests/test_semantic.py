import numpy as np

from srin_cli.segmentation import create_segmenter
from srin_cli.semantic import colorize_labels, encode_semantic, split_by_mask

from conftest import blob_image


def test_encoding_ignores_label_numbering_and_splits_by_mask():
    rng = np.random.default_rng(0)
    image = blob_image(rng, 32, 40)
    labels = rng.integers(0, 5, (32, 40))
    mask = np.zeros((32, 40), np.float32)
    mask[8:20, 10:30] = 1
    enc = encode_semantic(labels, image, mask)
    permuted = np.array([4, 2, 0, 3, 1])[labels] + 10
    assert np.allclose(enc, encode_semantic(permuted, image, mask))
    assert enc.shape == (32, 40, 3) and enc.dtype == np.float32 and 0 <= enc.min() and enc.max() <= 1
    # one blank segment: the foreground and the background each get their own mean colour
    blank = encode_semantic(np.zeros((32, 40), int), image, mask)
    assert np.allclose(blank[mask > 0.5][0], image[mask > 0.5].mean(0) / 255, atol=1e-5)
    assert np.allclose(blank[mask <= 0.5][0], image[mask <= 0.5].mean(0) / 255, atol=1e-5)
    assert split_by_mask(np.zeros((2, 2), int), np.array([[0, 1], [1, 0]], np.float32)).max() == 1


def test_felzenszwalb_labels_any_size():
    seg = create_segmenter("felzenszwalb")
    for h, w in [(1, 1), (37, 91), (600, 300)]:
        labels = seg(blob_image(np.random.default_rng(1), h, w))
        assert labels.shape == (h, w) and labels.dtype == np.int32 and labels.min() >= 1
    preview = colorize_labels(labels)
    assert preview.shape == (600, 300, 3) and preview.dtype == np.uint8
