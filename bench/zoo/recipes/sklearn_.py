"""scikit-learn: every estimator all_estimators() lists, fitted on tiny data, plus the composite
objects users save (pipelines, searches, calibrated models, kernels, splitters, scorers)."""

from __future__ import annotations

import inspect
from typing import Any

from . import Zoo, recipe, time_limit

FIT_SECONDS = 15
KINDS = ("classifier", "regressor", "transformer", "cluster")
# Where keeping an estimator small (see _small) needs a value of its own.
OVERRIDES: dict[str, dict[str, Any]] = {
    "TSNE": {"max_iter": 250},
    "SpectralBiclustering": {"n_best": 2},
}


def _data() -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((36, 4)) + 0.1
    y = np.tile([0, 1, 2], 12)
    x[:, 0] += y  # something to learn
    return {
        "x": x,
        "y": y,
        "y_reg": x @ np.array([1.0, 2.0, 0.5, 0.0]) + rng.normal(scale=0.1, size=36),
        "y_2d": np.column_stack([y % 2, (y + 1) % 2]),
        "text": ["the cat sat", "a dog ran", "the dog sat down", "cats and dogs"] * 9,
        "dicts": [{"colour": c, "size": s} for c, s in zip("rgbrgb" * 6, range(36), strict=True)],
        "labels": [["a"], ["b", "c"], ["a", "c"]] * 12,
    }


def _required(cls: type, kind: str, d: dict[str, Any], *, fill: bool) -> dict[str, Any]:
    """Values for the constructor arguments without defaults (meta-estimators); with ``fill``,
    also for an ``estimator`` left ``None`` that the estimator then refuses."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    regress = kind == "regressor"
    base = Ridge() if regress else LogisticRegression(max_iter=300)
    tree = DecisionTreeRegressor(max_depth=2) if regress else DecisionTreeClassifier(max_depth=2)
    choices = {
        "estimator": base,
        "base_estimator": base,
        "estimators": [("linear", base), ("tree", tree)],
        "transformer_list": [("pca", PCA(2)), ("scale", StandardScaler())],
        "transformers": [("scale", StandardScaler(), [0, 1])],
        "steps": [("scale", StandardScaler()), ("model", base)],
        "param_grid": {"alpha": [0.1, 1.0]} if regress else {"C": [0.1, 1.0]},
        "param_distributions": {"alpha": [0.1, 1.0]} if regress else {"C": [0.1, 1.0]},
        "dictionary": d["x"][:3] / (d["x"][:3] ** 2).sum(axis=1, keepdims=True) ** 0.5,
    }
    if cls.__name__ == "FrozenEstimator":
        choices["estimator"] = base.fit(d["x"], d["y_reg"] if regress else d["y"])
    args = {}
    for name, param in inspect.signature(cls).parameters.items():
        required = param.default is inspect.Parameter.empty
        if required and param.kind is param.POSITIONAL_OR_KEYWORD:
            if name not in choices:
                raise TypeError(f"no value for required argument {name!r}")
            args[name] = choices[name]
        elif fill and name == "estimator" and param.default is None:
            args[name] = choices[name]
    return args


def _fit(cls: type, kind: str, d: dict[str, Any]) -> Any:
    """Fit on the first input the estimator accepts: numbers, 1-D, multi-output, text, dicts,
    label lists, or the labels alone."""
    target = d["y_reg"] if kind == "regressor" else d["y"]
    attempts = [
        (d["x"], target),
        (d["x"], None),
        (d["x"], d["y"] % 2),
        (d["x"] @ d["x"].T, None),
        (d["x"][:, :1].ravel(), target),
        (d["x"], d["y_2d"]),
        (d["text"], d["y"]),
        (d["dicts"], None),
        (d["labels"], None),
        (d["y"], None),
    ]
    errors: list[Exception] = []
    for fill in (False, True):
        for x, y in attempts:
            est = cls(**_required(cls, kind, d, fill=fill))
            _small(est)
            try:
                return est.fit(x) if y is None else est.fit(x, y)
            except TimeoutError:
                raise
            except Exception as exc:
                errors.append(exc)
    raise errors[0]


def _small(est: Any) -> None:
    """Keep iterative and ensemble estimators quick and their files small: lower what is set
    above these (``None`` stays: it often means "from the data")."""
    params = est.get_params(deep=False)
    for name, value in (("n_estimators", 5), ("max_iter", 50), ("n_components", 2),
                        ("n_clusters", 3), ("perplexity", 5.0), ("n_neighbors", 5)):
        current = params.get(name)
        if isinstance(current, int | float) and not isinstance(current, bool) and current > value:
            est.set_params(**{name: value})
        elif name == "n_components" and current == "auto":
            est.set_params(n_components=value)
    est.set_params(**OVERRIDES.get(type(est).__name__, {}))


def _all_of(zoo: Zoo, kind: str | None) -> None:
    """Fit and save each estimator of ``kind`` (``None``: of no kind in KINDS) that no earlier
    kind already covered: a classifier that is also a transformer is saved once."""
    from sklearn.utils import all_estimators

    d = _data()
    folder = kind or "other"
    earlier = KINDS[: KINDS.index(kind)] if kind else KINDS
    seen = {name for k in earlier for name, _ in all_estimators(type_filter=k)}
    for name, cls in all_estimators(type_filter=kind):
        if name in seen:
            continue
        try:
            with time_limit(FIT_SECONDS):
                est = _fit(cls, kind or "other", d)
            zoo.both(f"{folder}/{name}", est)
        except Exception as exc:
            zoo.skip(f"{zoo.recipe}/{name}", exc)


@recipe("scikit-learn")
def sk_all_classifiers(zoo: Zoo) -> None:
    _all_of(zoo, "classifier")


@recipe("scikit-learn")
def sk_all_regressors(zoo: Zoo) -> None:
    _all_of(zoo, "regressor")


@recipe("scikit-learn")
def sk_all_transformers(zoo: Zoo) -> None:
    _all_of(zoo, "transformer")


@recipe("scikit-learn")
def sk_all_clusterers(zoo: Zoo) -> None:
    _all_of(zoo, "cluster")


@recipe("scikit-learn")
def sk_all_others(zoo: Zoo) -> None:
    """Outlier detectors and whatever else all_estimators() lists outside the four kinds."""
    _all_of(zoo, None)


def _frame() -> Any:
    import pandas as pd

    d = _data()
    return pd.DataFrame(
        {
            "a": d["x"][:, 0],
            "b": d["x"][:, 1],
            "colour": [r["colour"] for r in d["dicts"]],
            "note": d["text"],
        }
    )


@recipe("scikit-learn")
def sk_pipelines(zoo: Zoo) -> None:
    import numpy as np
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    d = _data()
    columns = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["a", "b"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
            ("text", TfidfVectorizer(), "note"),
        ]
    )
    tabular = make_pipeline(columns, RandomForestClassifier(n_estimators=5, random_state=0))
    zoo.both("column_transformer_pipeline", tabular.fit(_frame(), d["y"]))
    union = make_pipeline(FeatureUnion([("pca", PCA(2)), ("log", FunctionTransformer(np.log1p))]),
                          LogisticRegression(max_iter=200))
    zoo.both("feature_union_pipeline", union.fit(d["x"], d["y"]))
    target = TransformedTargetRegressor(LinearRegression(), func=np.log1p, inverse_func=np.expm1)
    zoo.both("transformed_target", target.fit(d["x"], d["y_reg"] - d["y_reg"].min()))
    zoo.joblib("pipeline_compressed", union, compress=3)


@recipe("scikit-learn")
def sk_searches_and_scorers(zoo: Zoo) -> None:
    from sklearn.metrics import fbeta_score, get_scorer, make_scorer
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    d = _data()
    scoring = {"f2": make_scorer(fbeta_score, beta=2, average="macro"), "acc": "accuracy"}
    grid = GridSearchCV(SVC(), {"C": [0.5, 1.0], "kernel": ["rbf", "linear"]}, scoring=scoring,
                        refit="f2", cv=3)
    zoo.both("grid_search_scorers", grid.fit(d["x"], d["y"]))
    rand = RandomizedSearchCV(DecisionTreeClassifier(), {"max_depth": [1, 2, 3]}, n_iter=2, cv=3,
                              random_state=0)
    zoo.both("randomized_search", rand.fit(d["x"], d["y"]))
    scorers = [make_scorer(fbeta_score, beta=0.5, average="micro"), get_scorer("roc_auc_ovr"),
               get_scorer("neg_mean_squared_error")]
    zoo.pickle("scorers", scorers, (2, 4, 5))


@recipe("scikit-learn")
def sk_calibrated_and_sgd(zoo: Zoo) -> None:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.svm import LinearSVC

    d = _data()
    for method in ("sigmoid", "isotonic"):
        cal = CalibratedClassifierCV(LinearSVC(), method=method, cv=3)
        zoo.both(f"calibrated_{method}", cal.fit(d["x"], d["y"]))
    for loss in ("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"):
        zoo.joblib(f"sgd_classifier_{loss}", SGDClassifier(loss=loss).fit(d["x"], d["y"]))
    for loss in ("squared_error", "huber", "epsilon_insensitive"):
        zoo.joblib(f"sgd_regressor_{loss}", SGDRegressor(loss=loss).fit(d["x"], d["y_reg"]))


@recipe("scikit-learn")
def sk_gaussian_process_kernels(zoo: Zoo) -> None:
    from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
    from sklearn.gaussian_process import kernels as k

    d = _data()
    chosen = {
        "rbf_white": k.ConstantKernel(1.0) * k.RBF(1.0) + k.WhiteKernel(0.1),
        "matern": k.Matern(nu=1.5),
        "rational_quadratic": k.RationalQuadratic(),
        "exp_sine": k.ExpSineSquared() + k.WhiteKernel(),
        "dot_product": k.DotProduct() + k.WhiteKernel(),
    }
    for name, kernel in chosen.items():
        # ExpSineSquared is positive definite on one feature only (a time axis).
        x = d["x"][:, :1] if name == "exp_sine" else d["x"]
        gpr = GaussianProcessRegressor(kernel, alpha=1e-2, normalize_y=True)
        zoo.both(f"gpr_{name}", gpr.fit(x, d["y_reg"]))
    zoo.joblib("gpc_rbf", GaussianProcessClassifier(k.RBF()).fit(d["x"], d["y"]))
    zoo.pickle("kernels", [*chosen.values(), k.PairwiseKernel(metric="laplacian")])


@recipe("scikit-learn")
def sk_splitters(zoo: Zoo) -> None:
    from sklearn import model_selection as ms

    splitters = [ms.KFold(5, shuffle=True, random_state=0), ms.StratifiedKFold(3),
                 ms.GroupKFold(3), ms.TimeSeriesSplit(3), ms.ShuffleSplit(4, random_state=0),
                 ms.LeaveOneOut(), ms.RepeatedStratifiedKFold(n_splits=2, n_repeats=2),
                 ms.PredefinedSplit([0, 1, -1, 1])]
    zoo.pickle("splitters", splitters, (2, 4, 5))
    zoo.joblib("kfold", splitters[0])


@recipe("scikit-learn")
def sk_dataset_bunch(zoo: Zoo) -> None:
    from sklearn.datasets import load_iris, make_classification

    zoo.joblib("iris_bunch", load_iris(as_frame=True))
    zoo.pickle("make_classification", make_classification(n_samples=20, random_state=0))
