import numpy as np
import pytest
from PIL import Image

from plumenet.classes import LABEL_CLASSES, merge_labels
from plumenet.errors import ConfigError
from plumenet.training.datasets import IGNORE_INDEX, ArrayDataset, ListDataset, read_mask_pairs


def test_array_and_list_datasets_check_shapes():
    images = np.zeros((2, 8, 10, 3), np.uint8)
    ds = ArrayDataset(images, np.ones((2, 8, 10), np.uint8))
    assert len(ds) == 2 and ds[1][1].shape == (8, 10)
    with pytest.raises(ValueError, match="does not match"):
        ArrayDataset(images, np.zeros((2, 8, 9), np.uint8))
    pairs = [(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), np.uint8))]
    assert len(ListDataset(pairs, names=["a"])) == 1
    with pytest.raises(ValueError, match="sample 0"):
        ListDataset([(np.zeros((4, 5, 3), np.uint8), np.zeros((5, 4), np.uint8))])


def _pair(folder, name, mask):
    folder.mkdir(parents=True, exist_ok=True)
    rgb = np.full((*mask.shape, 3), 90, np.uint8)
    Image.fromarray(rgb).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_mask.png")


def test_read_mask_pairs_model_and_label_classes(tmp_path):
    mask = np.zeros((6, 8), np.uint8)
    mask[:2] = len(LABEL_CLASSES) - 1
    mask[-1] = IGNORE_INDEX
    _pair(tmp_path / "cam", "b", mask)
    _pair(tmp_path, "a", np.full((6, 8), 2, np.uint8))
    ds = read_mask_pairs(tmp_path, "label")
    assert [n.rsplit("/", 1)[-1] for n in ds.names] == ["a.png", "b.png"]
    image, merged = ds[1]
    assert image.shape == (6, 8, 3)
    assert (merged[:2] == merge_labels(np.array([len(LABEL_CLASSES) - 1]))[0]).all()
    assert (merged[-1] == IGNORE_INDEX).all()
    with pytest.raises(ConfigError, match="--mask-classes label"):
        read_mask_pairs(tmp_path, "model")


def test_read_mask_pairs_errors(tmp_path):
    Image.fromarray(np.zeros((6, 8), np.uint8)).save(tmp_path / "lonely_mask.png")
    with pytest.raises(ConfigError, match="no image lonely"):
        read_mask_pairs(tmp_path)
    (tmp_path / "lonely_mask.png").unlink()
    _pair(tmp_path, "c", np.zeros((6, 8), np.uint8))
    Image.fromarray(np.zeros((5, 8), np.uint8)).save(tmp_path / "c_mask.png")
    with pytest.raises(ConfigError, match="differs from image"):
        read_mask_pairs(tmp_path)
