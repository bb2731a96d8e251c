"""Long-lived objects leave the collector's walks once a service has started or loaded a model version."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import pytest

from api.heap import freeze_long_lived
from api.services.model_cache import ModelCache


@pytest.fixture
def thawed():
    yield
    gc.unfreeze()  # give this pytest process its collector back


def test_loading_a_model_version_freezes_what_it_brought(services, registered, thawed):
    with services.db.unit_of_work(write=False) as uow:
        record = uow.models.get("credit", "1")
    gc.unfreeze()
    quiet = ModelCache(blobs=services.blobs)
    quiet.get(record)
    assert gc.get_freeze_count() == 0  # what tests build: no freezing

    freezing = dataclasses.replace(services, models=ModelCache(blobs=services.blobs, freeze_after_load=True))
    loaded = freezing.models.get(record)
    assert gc.get_freeze_count() > 10_000
    assert len(gc.get_objects()) < gc.get_freeze_count()  # the collector now walks only the newcomers
    assert loaded.predictor.predict_scores(loaded.background.frame).shape[0] == len(loaded.background.frame)


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(thawed):
    class Thing:
        pass

    thing = Thing()
    ref = weakref.ref(thing)
    assert freeze_long_lived() > 0
    del thing
    assert ref() is None
