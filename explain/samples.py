"""Data and models the code generates, for the demo, the tests and the benchmarks. Nothing is downloaded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from explain.schema import Feature, ModelSpec

PURPOSES = ("car", "edu", "home", "business", "other")
HOUSING = ("rent", "own", "mortgage")
EMPLOYMENT = ("salaried", "self_employed", "unemployed", "retired")
CREDIT_LABELS = ("approved", "declined")


def credit_spec() -> ModelSpec:
    """The feature schema of the synthetic credit applications."""
    return ModelSpec(
        task="binary",
        class_labels=CREDIT_LABELS,
        positive_class="approved",
        features=(
            Feature("income", "number", minimum=0, maximum=500_000, label="Annual income", monotone="increasing"),
            Feature("debt_to_income", "number", minimum=0, maximum=3, label="Debt-to-income ratio"),
            Feature("credit_history_years", "number", minimum=0, maximum=60, label="Years of credit history"),
            Feature("loan_amount", "number", minimum=500, maximum=200_000, label="Loan amount"),
            Feature("open_accounts", "integer", minimum=0, maximum=40, label="Open accounts"),
            Feature("age", "integer", minimum=18, maximum=100, immutable=True, label="Age"),
            Feature("purpose", "category", categories=PURPOSES, label="Loan purpose"),
            Feature("housing", "category", categories=HOUSING, label="Housing"),
            Feature("employment", "category", categories=EMPLOYMENT, label="Employment"),
        ),
    )


def make_credit_frame(n: int, *, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Applications and their labels from a plausible logistic rule with noise."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = np.round(np.clip(rng.lognormal(10.6, 0.5, n), 5_000, 480_000), 2)
    dti = np.round(np.clip(rng.gamma(2.0, 0.15, n), 0, 2.9), 3)
    history = np.round(np.clip((age - 18) * rng.uniform(0.2, 1.0, n), 0, 59), 1)
    loan = np.round(np.clip(rng.lognormal(9.3, 0.7, n), 500, 199_000), 2)
    accounts = rng.integers(0, 15, n)
    purpose = rng.choice(PURPOSES, n, p=[0.3, 0.15, 0.25, 0.15, 0.15])
    housing = rng.choice(HOUSING, n, p=[0.4, 0.25, 0.35])
    employment = rng.choice(EMPLOYMENT, n, p=[0.65, 0.15, 0.08, 0.12])
    logit = (
        1.2 * (np.log(income) - 10.6)
        - 3.0 * (dti - 0.3)
        + 0.04 * history
        - 0.8 * (np.log(loan) - 9.3)
        - 0.05 * np.abs(accounts - 4)
        + np.select([purpose == "edu", purpose == "business"], [0.4, -0.5], 0.0)
        + np.select([housing == "own", housing == "rent"], [0.5, -0.3], 0.0)
        + np.select([employment == "unemployed", employment == "self_employed"], [-1.5, -0.3], 0.0)
        + rng.normal(0, 0.5, n)
    )
    approved = logit > 0
    frame = pd.DataFrame(
        {
            "income": income.astype(float),
            "debt_to_income": dti.astype(float),
            "credit_history_years": history.astype(float),
            "loan_amount": loan.astype(float),
            "open_accounts": accounts.astype(int),
            "age": age.astype(int),
            "purpose": purpose.astype(object),
            "housing": housing.astype(object),
            "employment": employment.astype(object),
        }
    )
    labels = np.where(approved, "approved", "declined").astype(object)
    return frame, labels


def train_credit_pipeline(*, seed: int = 0, n: int = 2000, kind: str = "gbm") -> Any:
    """A scikit-learn Pipeline: one-hot string categories + scaled numerics, then GBM or logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = make_credit_frame(n, seed=seed)
    spec = credit_spec()
    categorical = [f.name for f in spec.features if f.type == "category"]
    numeric = [f.name for f in spec.features if f.type != "category"]
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            (
                "cat",
                OneHotEncoder(
                    handle_unknown="ignore",
                    categories=[list(spec.feature(c).categories or ()) for c in categorical],
                ),
                categorical,
            ),
        ]
    )
    if kind == "gbm":
        model: Any = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    elif kind == "linear":
        model = LogisticRegression(max_iter=1000)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    pipeline = Pipeline([("prep", prep), ("model", model)])
    pipeline.fit(frame, labels)
    return pipeline


def breast_cancer_spec_and_data() -> tuple[ModelSpec, pd.DataFrame, np.ndarray]:
    """scikit-learn's bundled breast-cancer data (shipped in the package), with a schema."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"])
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    labels = np.where(data.target.to_numpy() == 1, "benign", "malignant").astype(object)
    features = tuple(Feature(c, "number", minimum=0.0, maximum=float(frame[c].max()) * 2) for c in frame.columns)
    spec = ModelSpec(task="binary", class_labels=("benign", "malignant"), features=features)
    return spec, frame, labels
