"""Statistical and sequential models: statsmodels results, lifelines fitters, pmdarima ARIMAs,
tslearn, hmmlearn, pgmpy networks and river online learners."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe

P245 = (2, 4, 5)


def _series(n: int = 48) -> Any:
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.arange(n)
    return 10 + 0.1 * t + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=0.3, size=n)


def _frame() -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                       "group": rng.choice(["a", "b"], n)})
    df["y"] = 1.0 + 2.0 * df["x1"] - df["x2"] + rng.normal(scale=0.5, size=n)
    df["event"] = (df["y"] > df["y"].median()).astype(int)
    df["count"] = rng.poisson(np.exp(0.3 * df["x1"]))
    return df


# statsmodels ------------------------------------------------------------------------------------


@recipe("statsmodels")
def sm_regression_results(zoo: Zoo) -> None:
    import statsmodels.api as sm

    df = _frame()
    x = sm.add_constant(df[["x1", "x2"]])
    ols = sm.OLS(df["y"], x).fit()
    zoo.save("ols.pickle", "results.save", lambda p: ols.save(str(p)))
    zoo.save("ols_remove_data.pickle", "results.save",
             lambda p: ols.save(str(p), remove_data=True))
    logit = sm.Logit(df["event"], x).fit(disp=0)
    zoo.save("logit.pickle", "results.save", lambda p: logit.save(str(p)))
    glm = sm.GLM(df["count"], x, family=sm.families.Poisson()).fit()
    zoo.save("glm_poisson.pickle", "results.save", lambda p: glm.save(str(p), remove_data=True))
    zoo.pickle("wls_results", sm.WLS(df["y"], x, weights=1.0 + df["x1"] ** 2).fit())


@recipe("statsmodels")
def sm_formula_results(zoo: Zoo) -> None:
    import statsmodels.formula.api as smf

    df = _frame()
    ols = smf.ols("y ~ center(x1) + C(group) + I(x2 ** 2)", data=df).fit()
    zoo.save("formula_ols.pickle", "results.save", lambda p: ols.save(str(p)))
    mixed = smf.mixedlm("y ~ x1", df, groups=df["group"]).fit()
    zoo.save("mixedlm.pickle", "results.save", lambda p: mixed.save(str(p)))


@recipe("statsmodels")
def sm_time_series(zoo: Zoo) -> None:
    from statsmodels.tsa.arima.model import ARIMA
    from statsmodels.tsa.holtwinters import ExponentialSmoothing
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    y = _series()
    arima = ARIMA(y, order=(1, 1, 0)).fit()
    zoo.save("arima.pickle", "results.save", lambda p: arima.save(str(p)))
    sarimax = SARIMAX(y, order=(1, 0, 0), seasonal_order=(0, 0, 0, 0)).fit(disp=False)
    zoo.save("sarimax.pickle", "results.save", lambda p: sarimax.save(str(p), remove_data=True))
    hw = ExponentialSmoothing(y, trend="add", seasonal="add", seasonal_periods=12).fit()
    zoo.save("holt_winters.pickle", "results.save", lambda p: hw.save(str(p)))


# lifelines --------------------------------------------------------------------------------------


def _survival() -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 40
    age = rng.normal(50, 10, n)
    return pd.DataFrame({"duration": rng.exponential(10 + 0.1 * age), "age": age,
                         "event": rng.random(n) < 0.8, "arm": rng.integers(0, 2, n)})


@recipe("lifelines")
def lifelines_univariate(zoo: Zoo) -> None:
    import lifelines

    df = _survival()
    for name in ("KaplanMeierFitter", "NelsonAalenFitter", "WeibullFitter", "ExponentialFitter",
                 "LogNormalFitter", "LogLogisticFitter"):
        fitter = getattr(lifelines, name)().fit(df["duration"], df["event"])
        zoo.pickle(name, fitter)


@recipe("lifelines")
def lifelines_regression(zoo: Zoo) -> None:
    import lifelines

    df = _survival()
    cox = lifelines.CoxPHFitter(penalizer=0.1).fit(df, "duration", "event")
    zoo.pickle("CoxPHFitter", cox, P245)
    aft = lifelines.WeibullAFTFitter(penalizer=0.1).fit(df, "duration", "event")
    zoo.pickle("WeibullAFTFitter", aft)


# pmdarima ---------------------------------------------------------------------------------------


@recipe("pmdarima")
def pmd_arima(zoo: Zoo) -> None:
    import pmdarima as pm

    model = pm.ARIMA(order=(1, 0, 0), suppress_warnings=True).fit(_series())
    zoo.both("arima_100", model)
    zoo.pickle("arima_100", model, (2, 5))


@recipe("pmdarima")
def pmd_auto_arima(zoo: Zoo) -> None:
    import pmdarima as pm

    model = pm.auto_arima(_series(), seasonal=False, stepwise=True, start_p=0, start_q=0,
                          max_p=2, max_q=1, max_d=1,
                          suppress_warnings=True, error_action="ignore", maxiter=20)
    zoo.both("auto_arima", model)


@recipe("pmdarima")
def pmd_pipeline(zoo: Zoo) -> None:
    import pmdarima as pm
    from pmdarima.pipeline import Pipeline
    from pmdarima.preprocessing import BoxCoxEndogTransformer, FourierFeaturizer

    pipe = Pipeline([
        ("boxcox", BoxCoxEndogTransformer(lmbda2=1e-6)),
        ("fourier", FourierFeaturizer(m=12, k=2)),
        ("arima", pm.ARIMA(order=(1, 0, 0), suppress_warnings=True)),
    ])
    zoo.both("boxcox_fourier_pipeline", pipe.fit(_series()))


# tslearn ----------------------------------------------------------------------------------------


def _time_series() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 16)
    x = np.stack([np.sin(t + phase) + rng.normal(scale=0.1, size=16) for phase in
                  np.repeat([0.0, 1.5], 6)])[:, :, None]
    return x, np.repeat([0, 1], 6)


def _tslearn_models() -> list[Any]:
    from tslearn.clustering import KernelKMeans, TimeSeriesKMeans
    from tslearn.neighbors import KNeighborsTimeSeriesClassifier
    from tslearn.preprocessing import TimeSeriesScalerMeanVariance, TimeSeriesScalerMinMax
    from tslearn.svm import TimeSeriesSVC

    x, y = _time_series()
    return [
        TimeSeriesKMeans(n_clusters=2, metric="dtw", max_iter=3, random_state=0).fit(x),
        TimeSeriesKMeans(n_clusters=2, metric="euclidean", max_iter=3, random_state=0).fit(x),
        KernelKMeans(n_clusters=2, kernel="gak", max_iter=3, random_state=0).fit(x),
        KNeighborsTimeSeriesClassifier(n_neighbors=1).fit(x, y),
        TimeSeriesSVC(kernel="gak").fit(x, y),
        TimeSeriesScalerMeanVariance().fit(x),
        TimeSeriesScalerMinMax().fit(x),
    ]


@recipe("tslearn")
def tsl_to_pickle(zoo: Zoo) -> None:
    for model in _tslearn_models():
        name = type(model).__name__
        if name == "TimeSeriesKMeans":
            name += f"_{model.metric}"
        if hasattr(model, "to_pickle"):
            zoo.save(f"{name}.tslearn.pkl", "model.to_pickle",
                     lambda p, m=model: m.to_pickle(str(p)))
        zoo.pickle(name, model)


@recipe("tslearn")
def tsl_to_hdf5_json(zoo: Zoo) -> None:
    from tslearn.clustering import TimeSeriesKMeans

    x, _ = _time_series()
    model = TimeSeriesKMeans(n_clusters=2, metric="softdtw", max_iter=2, random_state=0).fit(x)
    zoo.save("kmeans_softdtw.json", "model.to_json", lambda p: model.to_json(str(p)))
    zoo.save("kmeans_softdtw.hdf5", "model.to_hdf5", lambda p: model.to_hdf5(str(p)))
    zoo.joblib("kmeans_softdtw", model)


# hmmlearn ---------------------------------------------------------------------------------------


@recipe("hmmlearn")
def hmm_models(zoo: Zoo) -> None:
    import numpy as np
    from hmmlearn import hmm

    rng = np.random.default_rng(0)
    continuous = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(4, 1, (30, 2))])
    counts = rng.multinomial(9, [0.2, 0.3, 0.5], 60)
    symbols = rng.integers(0, 4, (60, 1))
    models = {
        "GaussianHMM": (hmm.GaussianHMM(n_components=2, n_iter=5, random_state=0), continuous),
        "GMMHMM": (hmm.GMMHMM(n_components=2, n_mix=2, n_iter=5, random_state=0), continuous),
        "CategoricalHMM": (hmm.CategoricalHMM(n_components=2, n_iter=5, random_state=0),
                           symbols),
        "PoissonHMM": (hmm.PoissonHMM(n_components=2, n_iter=5, random_state=0), counts),
        "MultinomialHMM": (hmm.MultinomialHMM(n_components=2, n_trials=9, n_iter=5,
                                              random_state=0), counts),
    }
    for name, (model, x) in models.items():
        zoo.both(name, model.fit(x))
    zoo.pickle("GaussianHMM", models["GaussianHMM"][0], (2, 5))


# pgmpy ------------------------------------------------------------------------------------------


def _student_network() -> Any:
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("difficulty", "grade"), ("intelligence", "grade"),
                                     ("grade", "letter")])
    model.add_cpds(
        TabularCPD("difficulty", 2, [[0.6], [0.4]]),
        TabularCPD("intelligence", 2, [[0.7], [0.3]]),
        TabularCPD("grade", 2, [[0.9, 0.6, 0.7, 0.1], [0.1, 0.4, 0.3, 0.9]],
                   evidence=["difficulty", "intelligence"], evidence_card=[2, 2]),
        TabularCPD("letter", 2, [[0.9, 0.2], [0.1, 0.8]], evidence=["grade"], evidence_card=[2]),
    )
    model.check_model()
    return model


@recipe("pgmpy")
def pgmpy_bayesian_network(zoo: Zoo) -> None:
    zoo.pickle("student_network", _student_network(), P245)
    zoo.save("student_network.bif", "model.save", lambda p: _student_network().save(str(p),
                                                                                    filetype="bif"))


@recipe("pgmpy")
def pgmpy_fitted(zoo: Zoo) -> None:
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE

    data = _student_network().simulate(n_samples=200, seed=0)
    model = DiscreteBayesianNetwork([("difficulty", "grade"), ("intelligence", "grade")])
    model.fit(data, estimator=DiscreteMLE())
    zoo.pickle("fitted_network_mle", model)
    zoo.joblib("fitted_network_mle", model)
    bayes = DiscreteBayesianNetwork([("difficulty", "grade"), ("grade", "letter")])
    zoo.pickle("fitted_network_bayes", bayes.fit(data, estimator=DiscreteBayesianEstimator()))


@recipe("pgmpy")
def pgmpy_markov_and_inference(zoo: Zoo) -> None:
    import numpy as np
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.inference import VariableElimination
    from pgmpy.models import DiscreteMarkovNetwork

    markov = DiscreteMarkovNetwork([("a", "b"), ("b", "c")])
    markov.add_factors(DiscreteFactor(["a", "b"], [2, 2], np.arange(1, 5)),
                       DiscreteFactor(["b", "c"], [2, 2], np.arange(4, 0, -1)))
    zoo.pickle("markov_network", markov)
    query = VariableElimination(_student_network()).query(["letter"], evidence={"difficulty": 1})
    zoo.pickle("query_factor", query)


# river ------------------------------------------------------------------------------------------


def _stream() -> list[tuple[dict[str, float], int]]:
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for _ in range(40):
        x = {"a": float(rng.normal()), "b": float(rng.normal())}
        rows.append((x, int(x["a"] + x["b"] > 0)))
    return rows


@recipe("river")
def river_classifiers(zoo: Zoo) -> None:
    from river import linear_model, naive_bayes, preprocessing, tree

    models = {
        "scaled_logistic": preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        "hoeffding_tree": tree.HoeffdingTreeClassifier(grace_period=10),
        "gaussian_nb": naive_bayes.GaussianNB(),
        "perceptron": linear_model.Perceptron(),
    }
    for name, model in models.items():
        for x, y in _stream():
            model.learn_one(x, y)
        zoo.pickle(name, model)


@recipe("river")
def river_unsupervised_and_stats(zoo: Zoo) -> None:
    from river import anomaly, cluster, metrics, stats

    kmeans = cluster.KMeans(n_clusters=2, seed=0)
    forest = anomaly.HalfSpaceTrees(n_trees=3, height=3, window_size=10, seed=0)
    mean, var, accuracy = stats.Mean(), stats.Var(), metrics.Accuracy()
    for x, y in _stream():
        kmeans.learn_one(x)
        forest.learn_one(x)
        mean.update(x["a"])
        var.update(x["b"])
        accuracy.update(y, int(x["a"] > 0))
    zoo.pickle("kmeans", kmeans)
    zoo.pickle("half_space_trees", forest)
    zoo.pickle("running_stats", {"mean": mean, "var": var, "accuracy": accuracy}, P245)


@recipe("river")
def river_ensemble(zoo: Zoo) -> None:
    from river import forest

    model = forest.ARFClassifier(n_models=2, seed=0)
    for x, y in _stream():
        model.learn_one(x, y)
    zoo.pickle("adaptive_random_forest", model)
