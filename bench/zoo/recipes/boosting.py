"""xgboost, lightgbm and catboost: scikit-learn wrappers through joblib/pickle and the native
model files each library writes itself."""

from __future__ import annotations

import json
from typing import Any

from . import Zoo, recipe


def _data() -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    return {
        "x": x,
        "y": (x[:, 0] + x[:, 1] > 0).astype(int),
        "y3": np.digitize(x[:, 0], [-0.5, 0.5]),
        "y_reg": x @ [1.0, -1.0, 0.5, 0.0],
        "groups": [10] * 6,
    }


# xgboost ----------------------------------------------------------------------------------------


@recipe("xgboost")
def xgb_sklearn_wrappers(zoo: Zoo) -> None:
    import xgboost as xgb

    d = _data()
    small = {"n_estimators": 4, "max_depth": 2, "random_state": 0}
    zoo.both("XGBClassifier", xgb.XGBClassifier(**small).fit(d["x"], d["y"]))
    zoo.both("XGBClassifier_multiclass", xgb.XGBClassifier(**small).fit(d["x"], d["y3"]))
    zoo.both("XGBRegressor", xgb.XGBRegressor(**small).fit(d["x"], d["y_reg"]))
    ranker = xgb.XGBRanker(**small).fit(d["x"], d["y3"], group=d["groups"])
    zoo.both("XGBRanker", ranker)
    zoo.joblib("XGBRFClassifier", xgb.XGBRFClassifier(**small).fit(d["x"], d["y"]))


@recipe("xgboost")
def xgb_native(zoo: Zoo) -> None:
    import xgboost as xgb

    d = _data()
    model = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(d["x"], d["y"])
    zoo.save("classifier.json", "model.save_model", model.save_model)
    zoo.save("classifier.ubj", "model.save_model", model.save_model)
    booster = xgb.train({"max_depth": 2, "objective": "reg:squarederror"},
                        xgb.DMatrix(d["x"], label=d["y_reg"]), num_boost_round=4)
    zoo.save("booster.json", "Booster.save_model", booster.save_model)
    zoo.save("booster.ubj", "Booster.save_model", booster.save_model)
    zoo.save("booster.raw", "Booster.save_raw", lambda p: p.write_bytes(booster.save_raw()))
    zoo.pickle("booster", booster, (2, 4, 5))


# lightgbm ---------------------------------------------------------------------------------------


@recipe("lightgbm")
def lgb_sklearn_wrappers(zoo: Zoo) -> None:
    import lightgbm as lgb

    d = _data()
    small = {"n_estimators": 4, "num_leaves": 4, "min_child_samples": 5, "verbose": -1,
             "random_state": 0}
    zoo.both("LGBMClassifier", lgb.LGBMClassifier(**small).fit(d["x"], d["y"]))
    zoo.both("LGBMClassifier_multiclass", lgb.LGBMClassifier(**small).fit(d["x"], d["y3"]))
    zoo.both("LGBMRegressor", lgb.LGBMRegressor(**small).fit(d["x"], d["y_reg"]))
    zoo.both("LGBMRanker", lgb.LGBMRanker(**small).fit(d["x"], d["y3"], group=d["groups"]))


@recipe("lightgbm")
def lgb_native(zoo: Zoo) -> None:
    import lightgbm as lgb

    d = _data()
    train = lgb.Dataset(d["x"], label=d["y"], params={"verbose": -1})
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1,
                         "min_data_in_leaf": 5}, train, num_boost_round=4)
    zoo.save("booster.txt", "Booster.save_model", booster.save_model)
    zoo.save("booster.json", "Booster.dump_model",
             lambda p: p.write_text(json.dumps(booster.dump_model())))
    zoo.pickle("booster", booster, (2, 4, 5))
    zoo.joblib("booster", booster)
    data = lgb.Dataset(d["x"], label=d["y"], params={"verbose": -1}, free_raw_data=False)
    zoo.save("train.bin", "Dataset.save_binary", lambda p: data.construct().save_binary(p))


# catboost ---------------------------------------------------------------------------------------


def _catboost(kind: str, **extra: Any) -> Any:
    import catboost

    d = _data()
    settings = {"iterations": 4, "depth": 2, "verbose": False, "random_seed": 0,
                "allow_writing_files": False, "thread_count": 2}
    model = getattr(catboost, kind)(**settings, **extra)
    target = d["y_reg"] if kind == "CatBoostRegressor" else d["y"]
    return model.fit(d["x"], target)


@recipe("catboost")
def cb_sklearn_style(zoo: Zoo) -> None:
    zoo.both("CatBoostClassifier", _catboost("CatBoostClassifier"))
    zoo.both("CatBoostRegressor", _catboost("CatBoostRegressor"))
    zoo.pickle("CatBoostClassifier_logloss", _catboost("CatBoostClassifier",
                                                       loss_function="Logloss"), (2, 5))


@recipe("catboost")
def cb_native(zoo: Zoo) -> None:
    model = _catboost("CatBoostClassifier")
    for fmt, suffix in (("cbm", "cbm"), ("json", "json"), ("onnx", "onnx"), ("coreml", "mlmodel")):
        zoo.save(f"classifier.{suffix}", "model.save_model",
                 lambda p, f=fmt: model.save_model(str(p), format=f))


@recipe("catboost")
def cb_categorical_pool(zoo: Zoo) -> None:
    import catboost
    import pandas as pd

    d = _data()
    df = pd.DataFrame(d["x"], columns=list("abcd"))
    df["colour"] = ["red", "green", "blue"] * 20
    pool = catboost.Pool(df, label=d["y"], cat_features=["colour"])
    model = catboost.CatBoostClassifier(iterations=4, depth=2, verbose=False, random_seed=0,
                                        allow_writing_files=False).fit(pool)
    zoo.both("categorical_classifier", model)
    zoo.save("categorical_classifier.cbm", "model.save_model", model.save_model)
