"""The camera Protocols of storage: a config camera and the template's sample camera fit."""

from __future__ import annotations

from storage.camera import ArchiveCamera, StoreCamera
from storage.template import SAMPLE_CAMERA
from tests.helpers.store import make_camera


def test_config_camera_has_what_storage_reads():
    camera = make_camera()
    assert isinstance(camera, ArchiveCamera)
    assert isinstance(camera, StoreCamera)


def test_sample_camera_has_what_the_store_reads():
    assert isinstance(SAMPLE_CAMERA, StoreCamera)
