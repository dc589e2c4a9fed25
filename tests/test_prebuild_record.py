"""The prebuild's record of a cold build (tests/prebuild_image.py): the
cold-build test checks that build's output only when it made this very image
from no layer cache at all."""

from __future__ import annotations

import json

from prebuild_image import CACHED, RECORD_ENV, cold_build

from lab.backends.docker.images import BUILDING

TAG = "iolab:0123456789ab"


def _record(tmp_path, monkeypatch, tag: str, lines: list[str]) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"tag": tag, "messages": lines}))
    monkeypatch.setenv(RECORD_ENV, str(path))


def test_a_build_from_no_cache_is_this_images_cold_build(tmp_path, monkeypatch):
    lines = [f"{BUILDING}{TAG} from iolab-base:x", "Step 3/9 : RUN pip install", "Successfully"]
    _record(tmp_path, monkeypatch, TAG, lines)
    assert cold_build(TAG) == lines


def test_a_cache_hit_another_image_or_no_record_is_not(tmp_path, monkeypatch):
    _record(tmp_path, monkeypatch, TAG, [f"{BUILDING}{TAG} from b", f" ---> {CACHED}", "ok"])
    assert cold_build(TAG) is None  # a step came from the cache
    _record(tmp_path, monkeypatch, "iolab:other", [f"{BUILDING}iolab:other from b"])
    assert cold_build(TAG) is None  # another image
    _record(tmp_path, monkeypatch, TAG, ["images: copying"])
    assert cold_build(TAG) is None  # nothing built
    (tmp_path / "record.json").write_text("{not json")
    assert cold_build(TAG) is None
    monkeypatch.delenv(RECORD_ENV)
    assert cold_build(TAG) is None
