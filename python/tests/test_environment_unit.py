"""The environment identity a run records and compares (pure parts)."""

from __future__ import annotations

from lexalign.train.environment import IDENTITY, differences


def test_differences_name_what_changed_and_ignore_unknowns():
    old = {"image_id": "sha256:aaa", "lock_sha256": "111", "torch": "2.6.0", "cuda": None}
    new = {"image_id": "sha256:bbb", "lock_sha256": "111", "torch": "2.6.0", "cuda": "12.4"}
    assert differences(old, new) == ["image_id: sha256:aaa → sha256:bbb"]
    assert differences(None, new) == []
    assert differences(new, new) == []
    assert set(IDENTITY) == {"image_id", "image_digest", "lock_sha256", "torch", "cuda"}
