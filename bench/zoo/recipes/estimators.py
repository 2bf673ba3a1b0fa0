"""scikit-learn's neighbours: imbalanced-learn, category_encoders, feature-engine, mlxtend and
umap-learn estimators, fitted on tiny data and saved with joblib.dump and pickle.dump."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe


def _imbalanced() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = (np.arange(60) % 6 == 0).astype(int)  # 1 in 6
    x[y == 1] += 1.5
    return x, y


def _frame() -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame(
        {
            "city": rng.choice(["paris", "lyon", "nice", "lille"], n),
            "plan": rng.choice(["free", "pro"], n),
            "age": rng.integers(18, 80, n).astype(float),
            "spend": rng.gamma(2.0, 10.0, n),
            "constant": 1,
        }
    )
    df.loc[::7, "age"] = np.nan
    y = pd.Series((df["spend"] > df["spend"].median()).astype(int), name="churn")
    return df, y


# imbalanced-learn -------------------------------------------------------------------------------


@recipe("imbalanced-learn")
def imb_samplers(zoo: Zoo) -> None:
    from imblearn import combine, over_sampling, under_sampling

    x, y = _imbalanced()
    samplers = [
        over_sampling.SMOTE(k_neighbors=3, random_state=0),
        over_sampling.ADASYN(n_neighbors=3, random_state=0),
        over_sampling.RandomOverSampler(random_state=0),
        over_sampling.BorderlineSMOTE(k_neighbors=3, random_state=0),
        under_sampling.RandomUnderSampler(random_state=0),
        under_sampling.NearMiss(n_neighbors=3),
        under_sampling.TomekLinks(),
        under_sampling.EditedNearestNeighbours(),
        under_sampling.ClusterCentroids(random_state=0),
        combine.SMOTEENN(random_state=0, smote=over_sampling.SMOTE(k_neighbors=3)),
        combine.SMOTETomek(random_state=0, smote=over_sampling.SMOTE(k_neighbors=3)),
    ]
    for sampler in samplers:
        sampler.fit_resample(x, y)
        zoo.both(type(sampler).__name__, sampler)


@recipe("imbalanced-learn")
def imb_pipelines(zoo: Zoo) -> None:
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import make_pipeline
    from imblearn.under_sampling import RandomUnderSampler
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = _imbalanced()
    pipe = make_pipeline(StandardScaler(), SMOTE(k_neighbors=3, random_state=0),
                         LogisticRegression())
    zoo.both("smote_pipeline", pipe.fit(x, y))
    under = make_pipeline(RandomUnderSampler(random_state=0), LogisticRegression())
    zoo.both("undersample_pipeline", under.fit(x, y))


@recipe("imbalanced-learn")
def imb_ensembles(zoo: Zoo) -> None:
    from imblearn import ensemble

    x, y = _imbalanced()
    models = [
        ensemble.BalancedRandomForestClassifier(n_estimators=5, random_state=0,
                                                sampling_strategy="all", replacement=True,
                                                bootstrap=False),
        ensemble.EasyEnsembleClassifier(n_estimators=3, random_state=0),
        ensemble.BalancedBaggingClassifier(n_estimators=3, random_state=0),
        ensemble.RUSBoostClassifier(n_estimators=3, random_state=0),
    ]
    for model in models:
        zoo.both(type(model).__name__, model.fit(x, y))


# category_encoders ------------------------------------------------------------------------------

ENCODERS = (
    "OneHotEncoder", "OrdinalEncoder", "TargetEncoder", "BinaryEncoder", "WOEEncoder",
    "LeaveOneOutEncoder", "CatBoostEncoder", "BaseNEncoder", "CountEncoder", "JamesSteinEncoder",
    "MEstimateEncoder", "HelmertEncoder", "SumEncoder", "BackwardDifferenceEncoder",
    "PolynomialEncoder", "QuantileEncoder", "SummaryEncoder", "GrayEncoder", "RankHotEncoder",
)


@recipe("category_encoders")
def ce_encoders(zoo: Zoo) -> None:
    import category_encoders as ce

    df, y = _frame()
    for name in ENCODERS:
        encoder = getattr(ce, name)(cols=["city", "plan"])
        try:
            zoo.both(name, encoder.fit(df, y))
        except Exception as exc:
            zoo.skip(f"{zoo.recipe}/{name}", exc)


@recipe("category_encoders")
def ce_hashing(zoo: Zoo) -> None:
    import category_encoders as ce

    df, y = _frame()
    zoo.both("HashingEncoder", ce.HashingEncoder(cols=["city"], n_components=4,
                                                 max_process=1).fit(df, y))


@recipe("category_encoders")
def ce_pipeline(zoo: Zoo) -> None:
    import category_encoders as ce
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    df, y = _frame()
    pipe = make_pipeline(ce.TargetEncoder(cols=["city", "plan"]), SimpleImputer(),
                         RandomForestClassifier(n_estimators=5, random_state=0))
    zoo.both("target_encoder_pipeline", pipe.fit(df, y))


# feature-engine ---------------------------------------------------------------------------------


def _feature_engine_transformers() -> list[Any]:
    from feature_engine import (
        creation,
        discretisation,
        encoding,
        imputation,
        outliers,
        selection,
        transformation,
    )

    return [
        imputation.MeanMedianImputer(imputation_method="median", variables=["age"]),
        imputation.CategoricalImputer(variables=["city"]),
        imputation.AddMissingIndicator(variables=["age"]),
        encoding.OneHotEncoder(variables=["city", "plan"]),
        encoding.OrdinalEncoder(encoding_method="ordered", variables=["city"]),
        encoding.RareLabelEncoder(tol=0.2, n_categories=2, variables=["city"]),
        encoding.MeanEncoder(variables=["city"]),
        encoding.CountFrequencyEncoder(variables=["city"]),
        discretisation.EqualFrequencyDiscretiser(q=3, variables=["spend"]),
        discretisation.EqualWidthDiscretiser(bins=3, variables=["spend"]),
        transformation.YeoJohnsonTransformer(variables=["spend"]),
        transformation.LogTransformer(variables=["spend"]),
        outliers.Winsorizer(capping_method="iqr", variables=["spend"]),
        creation.CyclicalFeatures(variables=["spend"]),
        creation.MathFeatures(variables=["spend", "constant"], func=["sum", "mean"]),
        selection.DropConstantFeatures(),
        selection.DropCorrelatedFeatures(variables=["spend", "constant"]),
        selection.SmartCorrelatedSelection(variables=["spend", "constant"]),
    ]


@recipe("feature-engine")
def fe_transformers(zoo: Zoo) -> None:
    df, y = _frame()
    complete = df.fillna({"age": df["age"].mean()})
    for transformer in _feature_engine_transformers():
        name = type(transformer).__name__
        try:
            needs_complete = not name.endswith(("Imputer", "Indicator"))
            transformer.fit(complete if needs_complete else df, y)
            zoo.both(name, transformer)
        except Exception as exc:
            zoo.skip(f"{zoo.recipe}/{name}", exc)


@recipe("feature-engine")
def fe_pipeline(zoo: Zoo) -> None:
    from feature_engine.encoding import OneHotEncoder
    from feature_engine.imputation import MeanMedianImputer
    from feature_engine.wrappers import SklearnTransformerWrapper
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df, y = _frame()
    pipe = Pipeline(
        [
            ("impute", MeanMedianImputer(variables=["age"])),
            ("onehot", OneHotEncoder(variables=["city", "plan"])),
            ("scale", SklearnTransformerWrapper(StandardScaler(), variables=["age", "spend"])),
            ("model", LogisticRegression()),
        ]
    )
    zoo.both("pipeline", pipe.fit(df, y))


@recipe("feature-engine")
def fe_datetime(zoo: Zoo) -> None:
    import pandas as pd
    from feature_engine.datetime import DatetimeFeatures

    df = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=10, freq="37h")})
    features = DatetimeFeatures(variables=["when"], features_to_extract=["month", "hour"])
    zoo.both("DatetimeFeatures", features.fit(df))


# mlxtend ----------------------------------------------------------------------------------------


@recipe("mlxtend")
def mlx_classifiers(zoo: Zoo) -> None:
    from mlxtend import classifier

    x, y = _imbalanced()
    models = [
        classifier.Perceptron(epochs=5, random_seed=0),
        classifier.Adaline(epochs=5, random_seed=0),
        classifier.LogisticRegression(epochs=5, random_seed=0),
        classifier.SoftmaxRegression(epochs=5, random_seed=0),
        classifier.MultiLayerPerceptron(epochs=5, hidden_layers=[4], random_seed=0),
    ]
    for model in models:
        zoo.both(type(model).__name__, model.fit(x, y))


@recipe("mlxtend")
def mlx_ensembles(zoo: Zoo) -> None:
    from mlxtend.classifier import EnsembleVoteClassifier, StackingClassifier
    from mlxtend.regressor import StackingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.naive_bayes import GaussianNB
    from sklearn.tree import DecisionTreeClassifier

    x, y = _imbalanced()
    base = [LogisticRegression(), GaussianNB(), DecisionTreeClassifier(max_depth=2)]
    zoo.both("StackingClassifier",
             StackingClassifier(classifiers=base, meta_classifier=LogisticRegression()).fit(x, y))
    zoo.both("EnsembleVoteClassifier", EnsembleVoteClassifier(clfs=base, voting="soft").fit(x, y))
    stack = StackingRegressor(regressors=[LinearRegression(), Ridge()], meta_regressor=Ridge())
    zoo.both("StackingRegressor", stack.fit(x, x[:, 0] * 2.0))


@recipe("mlxtend")
def mlx_feature_selection(zoo: Zoo) -> None:
    from mlxtend.feature_selection import SequentialFeatureSelector
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _imbalanced()
    sfs = SequentialFeatureSelector(KNeighborsClassifier(3), k_features=2, cv=2)
    zoo.both("SequentialFeatureSelector", sfs.fit(x, y))


@recipe("mlxtend")
def mlx_frequent_patterns(zoo: Zoo) -> None:
    import pandas as pd
    from mlxtend.frequent_patterns import apriori, association_rules
    from mlxtend.preprocessing import TransactionEncoder

    baskets = [["milk", "bread"], ["bread", "butter"], ["milk", "bread", "butter"], ["beer"]] * 3
    encoder = TransactionEncoder().fit(baskets)
    onehot = pd.DataFrame(encoder.transform(baskets), columns=encoder.columns_)
    itemsets = apriori(onehot, min_support=0.2, use_colnames=True)
    zoo.both("TransactionEncoder", encoder)
    zoo.save("itemsets.pkl", "df.to_pickle", itemsets.to_pickle)
    rules = association_rules(itemsets, num_itemsets=len(baskets), min_threshold=0.5)
    zoo.save("association_rules.pkl", "df.to_pickle", rules.to_pickle)


# umap-learn -------------------------------------------------------------------------------------


def _umap(**kwargs: Any) -> Any:
    import umap

    x, _ = _imbalanced()
    return umap.UMAP(n_neighbors=5, n_components=2, n_epochs=30, random_state=0, **kwargs).fit(x)


@recipe("umap-learn")
def umap_euclidean(zoo: Zoo) -> None:
    zoo.both("umap_euclidean", _umap())


@recipe("umap-learn")
def umap_cosine(zoo: Zoo) -> None:
    model = _umap(metric="cosine")
    zoo.joblib("umap_cosine", model)
    zoo.pickle("umap_cosine", model, (5,))


@recipe("umap-learn")
def umap_supervised(zoo: Zoo) -> None:
    import umap

    x, y = _imbalanced()
    model = umap.UMAP(n_neighbors=5, n_epochs=30, random_state=0, target_weight=0.5).fit(x, y)
    zoo.both("umap_supervised", model)
