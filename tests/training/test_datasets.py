import numpy as np
import pytest
from PIL import Image

from plumenet.classes import LABEL_CLASSES, merge_labels
from plumenet.errors import ConfigError
from plumenet.training.datasets import (
    IGNORE_INDEX,
    ArrayDataset,
    ListDataset,
    images_without_masks,
    read_mask_pairs,
)


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


def test_images_without_masks_are_listed(tmp_path):
    _pair(tmp_path, "a.b", np.zeros((6, 8), np.uint8))
    _pair(tmp_path / "cam", "c", np.zeros((6, 8), np.uint8))
    Image.new("RGB", (8, 6)).save(tmp_path / "cam" / "d.jpg")
    Image.new("RGB", (8, 6)).save(tmp_path / "e.PNG")
    (tmp_path / "notes.txt").write_text("x")
    assert images_without_masks(tmp_path) == [tmp_path / "cam" / "d.jpg", tmp_path / "e.PNG"]
    assert len(read_mask_pairs(tmp_path)) == 2


def test_masks_without_any_labelled_pixel_are_an_error(tmp_path):
    _pair(tmp_path, "a", np.full((6, 8), IGNORE_INDEX, np.uint8))
    _pair(tmp_path, "b", np.full((6, 8), IGNORE_INDEX, np.uint8))
    with pytest.raises(
        ConfigError, match=r"the 2 NAME_mask\.png mask\(s\) hold no labelled pixels"
    ):
        read_mask_pairs(tmp_path)
    one = np.full((6, 8), IGNORE_INDEX, np.uint8)
    one[0, 0] = 1
    _pair(tmp_path, "b", one)
    assert len(read_mask_pairs(tmp_path)) == 2  # one labelled pixel is enough
