"""Fitted models on bundled and generated data, shared by the explainer tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from explain.artifacts import dump_skops, load_predictor
from explain.base import Background, Predictor
from explain.samples import breast_cancer_spec_and_data, credit_spec, make_credit_frame, train_credit_pipeline


class Fitted:
    def __init__(self, predictor: Predictor, background: Background, rows: Any, fresh: Any) -> None:
        self.predictor, self.background, self.rows, self.fresh = predictor, background, rows, fresh


@pytest.fixture(scope="session")
def credit() -> Fitted:
    spec = credit_spec()
    predictor = load_predictor(dump_skops(train_credit_pipeline(seed=0, n=1500)), format="skops", spec=spec)
    background, _ = make_credit_frame(500, seed=7)
    rows, _ = make_credit_frame(4, seed=3)
    fresh, _ = make_credit_frame(20_000, seed=99)
    return Fitted(predictor, Background(background, "credit-bg"), rows, fresh)


@pytest.fixture(scope="session")
def cancer() -> Fitted:
    from sklearn.ensemble import RandomForestClassifier

    spec, frame, labels = breast_cancer_spec_and_data()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(frame))
    train, test = order[:450], order[450:]
    model = RandomForestClassifier(n_estimators=40, max_depth=5, random_state=0)
    model.fit(frame.iloc[train], labels[train])
    predictor = load_predictor(dump_skops(model), format="skops", spec=spec)
    # the "fresh" pool for re-measuring anchors is the whole data set, the population the anchor speaks of
    return Fitted(predictor, Background(frame.iloc[train[:300]], "cancer-bg"), frame.iloc[test[:3]], frame)
