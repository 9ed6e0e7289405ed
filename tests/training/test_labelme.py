import base64
import io
import json
import logging

import numpy as np
import pytest
from PIL import Image, ImageDraw

from plumenet.classes import LABEL_CLASSES, MODEL_CLASSES
from plumenet.errors import ConfigError
from plumenet.training.labelme import (
    LabelMeDataset,
    LabelMeError,
    load_labelme,
    load_labelme_dir,
    rasterize,
    split_by_viewpoint,
)

L = {name: i for i, name in enumerate(LABEL_CLASSES)}


def _png(h=40, w=60, color=(10, 20, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def _shape(label, kind, points):
    return {"label": label, "shape_type": kind, "points": points, "flags": {}}


def _write(path, shapes, *, embed=True, h=40, w=60, flags=None, image_name=None):
    doc = {
        "version": "5.4.1",
        "flags": flags or {},
        "shapes": shapes,
        "imageHeight": h,
        "imageWidth": w,
        "imagePath": image_name or path.with_suffix(".png").name,
        "imageData": None,
    }
    data = _png(h, w)
    if embed:
        doc["imageData"] = base64.b64encode(data).decode()
    else:
        (path.parent / doc["imagePath"]).write_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_rectangle_and_polygon_match_independent_mask():
    doc = {
        "shapes": [
            _shape("land", "rectangle", [[0, 30], [59, 39]]),
            _shape("eruption_column", "polygon", [[10, 5], [19, 5], [19, 29], [10, 29]]),
            _shape("lava", "rectangle", [[40, 32], [35, 36]]),  # corners in any order
        ]
    }
    mask = rasterize(doc, 40, 60)
    expected = np.zeros((40, 60), dtype=np.uint8)
    expected[30:40, :] = L["land"]
    expected[5:30, 10:20] = L["eruption_column"]
    expected[32:37, 35:41] = L["lava"]
    np.testing.assert_array_equal(mask, expected)


def test_later_shapes_on_top_and_circle():
    doc = {
        "shapes": [
            _shape("lava", "rectangle", [[0, 0], [9, 9]]),
            _shape("land", "rectangle", [[5, 5], [14, 14]]),
            _shape("low_temperature_gas", "circle", [[30, 20], [34, 20]]),
        ]
    }
    mask = rasterize(doc, 40, 60)
    assert mask[2, 2] == L["lava"] and mask[7, 7] == L["land"] and mask[12, 12] == L["land"]
    canvas = Image.new("L", (60, 40), 0)
    ImageDraw.Draw(canvas).ellipse([26, 16, 34, 24], fill=1, outline=1)
    circle = np.asarray(canvas) == 1
    assert (mask[circle] == L["low_temperature_gas"]).all()
    assert (mask[20:, :][~circle[20:, :]] != L["low_temperature_gas"]).all()
    assert mask[20, 30] == L["low_temperature_gas"] and mask[20, 36] == L["background"]


def test_polygon_uses_pil_semantics_for_slanted_edges():
    pts = [[5.2, 3.7], [40.9, 10.1], [22.5, 35.3]]
    mask = rasterize({"shapes": [_shape("pyroclastic_flow", "polygon", pts)]}, 40, 60)
    canvas = Image.new("L", (60, 40), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts], fill=1, outline=1)
    np.testing.assert_array_equal(mask == L["pyroclastic_flow"], np.asarray(canvas) == 1)


def test_line_and_point_ignored_with_warning(caplog):
    doc = {
        "shapes": [
            _shape("land", "line", [[0, 0], [10, 10]]),
            _shape("land", "point", [[3, 3]]),
        ]
    }
    with caplog.at_level(logging.WARNING, logger="plumenet.training.labelme"):
        mask = rasterize(doc, 20, 20, source="f.json")
    assert (mask == 0).all()
    assert "f.json: shape 0 ('land', line) has no area" in caplog.text
    assert "shape 1" in caplog.text


def test_unknown_label_names_file_shape_and_valid_names(tmp_path):
    path = _write(
        tmp_path / "a.json",
        [
            _shape("land", "rectangle", [[0, 0], [3, 3]]),
            _shape("volcano", "polygon", [[0, 0], [5, 0], [5, 5]]),
        ],
    )
    with pytest.raises(
        LabelMeError,
        match=r"a\.json: shape 1 \('volcano', polygon\): unknown label 'volcano'; "
        r"valid names: .*eruption_column",
    ):
        load_labelme(path)


def test_aliases_and_custom_map():
    doc = {"shapes": [_shape("Plume", "rectangle", [[0, 0], [3, 3]])]}
    assert rasterize(doc, 8, 8)[1, 1] == L["eruption_column"]
    custom = rasterize(
        {"shapes": [_shape("fumarole", "rectangle", [[0, 0], [3, 3]])]},
        8,
        8,
        label_map={"fumarole": "high_temperature_gas"},
    )
    assert custom[2, 2] == L["high_temperature_gas"]


def test_points_outside_image(tmp_path):
    inside = {"shapes": [_shape("land", "polygon", [[-0.6, 0], [60.9, 0], [30, 40.5]])]}
    assert rasterize(inside, 40, 60)[0, 0] == L["land"]  # within 1 px: tolerated
    path = _write(tmp_path / "b.json", [_shape("lava", "polygon", [[0, 0], [75, 0], [30, 20]])])
    with pytest.raises(
        LabelMeError,
        match=r"b\.json: shape 0 \('lava', polygon\): point \(75, 0\) lies outside "
        r"the 60 x 40 image",
    ):
        load_labelme(path)


def test_unsupported_shape_type():
    with pytest.raises(LabelMeError, match="shape type 'mask' is not supported"):
        rasterize({"shapes": [_shape("land", "mask", [[0, 0], [1, 1]])]}, 4, 4)


def test_embedded_and_external_images(tmp_path):
    shapes = [_shape("land", "rectangle", [[0, 20], [59, 39]])]
    emb = load_labelme(_write(tmp_path / "emb.json", shapes, embed=True))
    ext = load_labelme(_write(tmp_path / "ext.json", shapes, embed=False))
    for s in (emb, ext):
        assert s.image.shape == (40, 60, 3)
        assert tuple(s.image[0, 0]) == (10, 20, 30)
        assert s.mask.shape == (40, 60)
        assert (s.model_mask[20:] == MODEL_CLASSES.index("land")).all()
    assert ext.image_path == (tmp_path / "ext.png").resolve()


def test_missing_external_image(tmp_path):
    path = _write(tmp_path / "c.json", [], embed=False)
    (tmp_path / "c.png").unlink()
    with pytest.raises(LabelMeError, match=r"c\.json: image 'c\.png' not found"):
        load_labelme(path)


def test_model_mask_merges_classes(tmp_path):
    shapes = [
        _shape("eruption_cloud", "rectangle", [[0, 0], [9, 9]]),
        _shape("high_temperature_gas", "rectangle", [[20, 0], [29, 9]]),
    ]
    s = load_labelme(_write(tmp_path / "m.json", shapes))
    assert s.model_mask[5, 5] == MODEL_CLASSES.index("ash_emissions")
    assert s.model_mask[5, 25] == MODEL_CLASSES.index("non_ash_emissions")
    ds = LabelMeDataset([s])
    img, mask = ds[0]
    assert img.shape == (40, 60, 3) and mask[5, 5] == MODEL_CLASSES.index("ash_emissions")


def test_dir_camera_viewpoint_from_folders_and_flags(tmp_path):
    _write(tmp_path / "CAM1" / "north" / "a.json", [])
    _write(tmp_path / "CAM1" / "b.json", [])
    _write(tmp_path / "c.json", [])
    _write(tmp_path / "CAM2" / "d.json", [], flags={"camera": "X", "viewpoint": "v9"})
    (tmp_path / "notes.json").write_text(json.dumps({"hello": 1}))  # skipped
    samples = load_labelme_dir(tmp_path)
    got = {s.json_path.name: (s.camera, s.viewpoint) for s in samples}
    assert got == {
        "a.json": ("CAM1", "north"),
        "b.json": ("CAM1", "CAM1"),
        "c.json": ("default", "default"),
        "d.json": ("X", "v9"),
    }


def test_dir_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_labelme_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no LabelMe files"):
        load_labelme_dir(tmp_path)


def test_split_by_viewpoint_is_disjoint(tmp_path):
    from plumenet.training.labelme import Sample

    samples = []
    for v in range(12):
        for k in range(1 + v % 3):
            samples.append(
                Sample(
                    tmp_path / f"{v}_{k}.png",
                    np.zeros((2, 2, 3), np.uint8),
                    np.zeros((2, 2), np.uint8),
                    camera=f"C{v % 2}",
                    viewpoint=f"v{v}",
                )
            )
    train, val, test = split_by_viewpoint(samples, seed=3)
    assert len(train) + len(val) + len(test) == len(samples)
    views = [{(s.camera, s.viewpoint) for s in split} for split in (train, val, test)]
    assert views[0] and views[1] and views[2]
    assert not (views[0] & views[1]) and not (views[0] & views[2]) and not (views[1] & views[2])
    assert len(train) > len(val) and len(train) > len(test)
    again = split_by_viewpoint(samples, seed=3)
    assert [s.image_path for s in again[0]] == [s.image_path for s in train]
    with pytest.raises(ConfigError, match="three non-negative"):
        split_by_viewpoint(samples, fractions=(1.0, -1.0, 0.5))


def test_index_is_lazy_and_dataset_loads_on_access(tmp_path):
    from plumenet.training.labelme import index_labelme_dir

    _write(tmp_path / "V1" / "a.json", [_shape("land", "rectangle", [[0, 20], [59, 39]])])
    _write(tmp_path / "V2" / "b.json", [_shape("lava", "circle", [[10, 10], [12, 10]])])
    refs = index_labelme_dir(tmp_path)
    assert [(r.camera, r.viewpoint) for r in refs] == [("V1", "V1"), ("V2", "V2")]
    ds = LabelMeDataset(refs)
    img, mask = ds[0]
    assert img.shape == (40, 60, 3) and mask[30, 5] == MODEL_CLASSES.index("land")
    assert ds[1][1][10, 10] == MODEL_CLASSES.index("lava")
    train, val, test = split_by_viewpoint(refs, fractions=(0.5, 0.5, 0.0))
    assert len(train) == 1 and len(val) == 1 and test == []


@pytest.mark.parametrize("image_name", ["images/a.png", "../images/a.png", "..\\images\\a.png"])
def test_image_path_with_folders_is_relative_to_the_json_folder(tmp_path, image_name):
    json_path = tmp_path / "labels" / "a.json"
    image = (json_path.parent / image_name.replace("\\", "/")).resolve()
    image.parent.mkdir(parents=True)
    image.write_bytes(_png(color=(1, 2, 3)))
    shapes = [_shape("land", "rectangle", [[0, 20], [59, 39]])]
    _write(json_path, shapes, embed=True, image_name=image_name)  # embedded: imageData wins
    doc = json.loads(json_path.read_text())
    embedded = load_labelme(json_path)
    assert tuple(embedded.image[0, 0]) == (10, 20, 30)
    json_path.write_text(json.dumps({**doc, "imageData": None}))
    external = load_labelme(json_path)
    assert external.image_path == image
    assert tuple(external.image[0, 0]) == (1, 2, 3)
    assert (external.model_mask[20:] == MODEL_CLASSES.index("land")).all()
    assert len(load_labelme_dir(tmp_path)) == 1


def test_embedded_image_needs_no_file_even_with_folders_in_image_path(tmp_path):
    path = _write(tmp_path / "a.json", [], embed=True, image_name="../elsewhere/a.jpg")
    assert load_labelme(path).image.shape == (40, 60, 3)
    assert len(load_labelme_dir(tmp_path)) == 1


def test_missing_images_are_found_when_indexing(tmp_path):
    from plumenet.training.labelme import index_labelme_dir

    _write(tmp_path / "ok.json", [], embed=True)
    for name in ("b", "c"):
        doc = json.loads(_write(tmp_path / f"{name}.json", [], embed=True).read_text())
        doc.update(imageData=None, imagePath=f"../images/{name}.png")
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    with pytest.raises(LabelMeError, match=r"2 of 3 LabelMe file\(s\) .* e\.g\. .*b\.json: "
                       r"imagePath '\.\./images/b\.png' -> .*images/b\.png; imagePath is read "
                       "relative to the JSON file's folder"):  # fmt: skip
        index_labelme_dir(tmp_path)
