"""Scientific objects users pickle: astropy quantities and tables, scikit-image transforms,
networkx graphs, shapely geometries and optuna studies."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe

P245 = (2, 4, 5)


# astropy ----------------------------------------------------------------------------------------


@recipe("astropy")
def astropy_quantities_units(zoo: Zoo) -> None:
    import astropy.units as u
    import numpy as np

    speed = np.array([1.0, 2.5, 4.0]) * u.km / u.s
    zoo.pickle("quantity", speed, P245)
    zoo.pickle("units", [u.m, u.km / u.s, u.erg / (u.cm**2 * u.s), u.dimensionless_unscaled,
                         u.def_unit("furlong", 201.168 * u.m)], P245)
    zoo.pickle("equivalencies", (500 * u.nm).to(u.THz, equivalencies=u.spectral()))


@recipe("astropy")
def astropy_time_coordinates(zoo: Zoo) -> None:
    import astropy.units as u
    from astropy.coordinates import Angle, Latitude, SkyCoord
    from astropy.time import Time, TimeDelta

    times = Time(["2024-01-01T00:00:00", "2024-06-30T12:00:00"], scale="utc")
    zoo.pickle("time", times, P245)
    zoo.pickle("time_delta", TimeDelta(3.5, format="jd"))
    zoo.pickle("angles", [Angle("10h21m"), Latitude(-23.5 * u.deg)])
    zoo.pickle("skycoord", SkyCoord(ra=[10.68, 83.82] * u.deg, dec=[41.27, -5.39] * u.deg,
                                    frame="icrs"))


@recipe("astropy")
def astropy_tables(zoo: Zoo) -> None:
    import astropy.units as u
    from astropy.table import QTable, Table
    from astropy.time import Time

    table = Table({"name": ["m31", "m42"], "flux": [1.5, 2.5] * u.Jy, "n": [1, 2]},
                  meta={"survey": "zoo"})
    zoo.pickle("table", table, P245)
    qtable = QTable({"t": Time(["2024-01-01", "2024-01-02"]), "d": [1.0, 2.0] * u.pc})
    zoo.pickle("qtable_mixins", qtable)
    zoo.save("table.ecsv", "Table.write", lambda p: table.write(p, format="ascii.ecsv"))
    zoo.save("table.fits", "Table.write", lambda p: table.write(p, format="fits"))


@recipe("astropy")
def astropy_models(zoo: Zoo) -> None:
    import numpy as np
    from astropy.modeling import fitting, models

    x = np.linspace(-3, 3, 30)
    y = 2 * np.exp(-0.5 * x**2) + np.random.default_rng(0).normal(scale=0.05, size=30)
    fitted = fitting.TRFLSQFitter()(models.Gaussian1D(1, 0, 1), x, y)
    zoo.pickle("gaussian1d_fitted", fitted)
    zoo.pickle("compound_model", models.Shift(1) | models.Scale(2) + models.Const1D(0.5))


# scikit-image -----------------------------------------------------------------------------------


@recipe("scikit-image")
def skimage_transforms(zoo: Zoo) -> None:
    import numpy as np
    from skimage import transform

    src = np.array([[0, 0], [0, 10], [10, 10], [10, 0], [5, 5]], dtype=float)
    dst = src @ np.array([[0.9, 0.2], [-0.2, 0.9]]) + 3
    for name in ("AffineTransform", "SimilarityTransform", "EuclideanTransform",
                 "ProjectiveTransform"):
        tform = getattr(transform, name)()
        tform.estimate(src, dst)
        zoo.pickle(name, tform, P245)
    zoo.pickle("PolynomialTransform", transform.estimate_transform("polynomial", src, dst, 2))
    piecewise = transform.PiecewiseAffineTransform()
    piecewise.estimate(src, dst)
    zoo.pickle("PiecewiseAffineTransform", piecewise)


@recipe("scikit-image")
def skimage_features(zoo: Zoo) -> None:
    import numpy as np
    from skimage import data, feature, measure

    image = data.camera()[::8, ::8]
    orb = feature.ORB(n_keypoints=10, fast_threshold=0.05)
    orb.detect_and_extract(image)
    zoo.pickle("orb_keypoints", {"keypoints": orb.keypoints, "descriptors": orb.descriptors})
    labels = measure.label(image > image.mean())
    zoo.pickle("label_image", labels)
    zoo.pickle("hog", feature.hog(image, pixels_per_cell=(16, 16)), P245)
    zoo.save("camera_small.npy", "np.save", lambda p: np.save(p, image))


@recipe("scikit-image")
def skimage_regionprops(zoo: Zoo) -> None:
    from skimage import data, measure

    labels = measure.label(data.binary_blobs(64, rng=0))
    table = measure.regionprops_table(labels, properties=("label", "area", "centroid"))
    zoo.pickle("regionprops_table", table)


# networkx ---------------------------------------------------------------------------------------


def _graphs() -> dict[str, Any]:
    import networkx as nx

    weighted = nx.Graph()
    weighted.add_weighted_edges_from([("a", "b", 0.5), ("b", "c", 1.5), ("c", "a", 2.0)])
    weighted.graph["name"] = "triangle"
    directed = nx.DiGraph([(1, 2), (2, 3), (3, 1)])
    directed.nodes[1]["label"] = "start"
    multi = nx.MultiDiGraph()
    multi.add_edge("x", "y", key="road", km=3)
    multi.add_edge("x", "y", key="rail", km=2)
    return {
        "karate": nx.karate_club_graph(),
        "weighted": weighted,
        "directed": directed,
        "multigraph": nx.MultiGraph([(0, 1), (0, 1), (1, 2)]),
        "multidigraph": multi,
        "grid": nx.grid_2d_graph(3, 3),
    }


@recipe("networkx")
def nx_graphs(zoo: Zoo) -> None:
    for name, graph in _graphs().items():
        zoo.pickle(name, graph, P245 if name == "karate" else (4,))


@recipe("networkx")
def nx_results(zoo: Zoo) -> None:
    import networkx as nx

    karate = nx.karate_club_graph()
    zoo.pickle("pagerank", nx.pagerank(karate))
    zoo.pickle("shortest_paths", dict(nx.all_pairs_shortest_path_length(_graphs()["grid"])))
    zoo.pickle("communities", list(nx.community.greedy_modularity_communities(karate)))


@recipe("networkx")
def nx_files(zoo: Zoo) -> None:
    import networkx as nx

    graph = _graphs()["weighted"]
    zoo.save("weighted.graphml", "nx.write_graphml", lambda p: nx.write_graphml(graph, p))
    zoo.save("weighted.gml", "nx.write_gml", lambda p: nx.write_gml(graph, p))
    zoo.save("karate.edgelist", "nx.write_edgelist",
             lambda p: nx.write_edgelist(nx.karate_club_graph(), p))


# shapely ----------------------------------------------------------------------------------------


@recipe("shapely")
def shapely_geometries(zoo: Zoo) -> None:
    from shapely import geometry as g

    polygon = g.Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], holes=[[(1, 1), (2, 1), (2, 2)]])
    geometries = {
        "point": g.Point(1.0, 2.0),
        "point_z": g.Point(1.0, 2.0, 3.0),
        "line": g.LineString([(0, 0), (1, 1), (2, 0)]),
        "ring": g.LinearRing([(0, 0), (1, 0), (1, 1)]),
        "polygon": polygon,
        "multipolygon": g.MultiPolygon([polygon, g.box(5, 5, 6, 6)]),
        "multipoint": g.MultiPoint([(0, 0), (1, 1)]),
        "collection": g.GeometryCollection([g.Point(0, 0), g.LineString([(0, 0), (1, 1)])]),
    }
    zoo.pickle("geometries", geometries, P245)
    for name in ("point", "polygon", "multipolygon"):
        zoo.pickle(name, geometries[name])


@recipe("shapely")
def shapely_operations(zoo: Zoo) -> None:
    import numpy as np
    import shapely
    from shapely import geometry as g

    a, b = g.Point(0, 0).buffer(1.0), g.box(0, 0, 2, 2)
    zoo.pickle("operations", [a.intersection(b), a.union(b), a.convex_hull, b.centroid])
    points = shapely.points(np.random.default_rng(0).random((20, 2)))
    zoo.pickle("geometry_array", points, P245)
    zoo.pickle("strtree", shapely.STRtree(points))


@recipe("shapely")
def shapely_wkb(zoo: Zoo) -> None:
    import shapely
    from shapely import geometry as g

    polygon = g.box(0, 0, 3, 2)
    zoo.save("polygon.wkb", "shapely.to_wkb", lambda p: p.write_bytes(shapely.to_wkb(polygon)))
    zoo.save("polygon.wkt", "shapely.to_wkt", lambda p: p.write_text(shapely.to_wkt(polygon)))


# optuna -----------------------------------------------------------------------------------------


def _objective(trial: Any) -> float:
    x = trial.suggest_float("x", -5, 5)
    depth = trial.suggest_int("depth", 1, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return (x - 1) ** 2 + depth + (0.5 if kind == "b" else 0.0)


def _study(sampler: Any = None, pruner: Any = None, n_trials: int = 6) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="zoo", sampler=sampler, pruner=pruner)
    study.optimize(_objective, n_trials=n_trials)
    return study


@recipe("optuna")
def optuna_study(zoo: Zoo) -> None:
    import optuna

    study = _study(optuna.samplers.TPESampler(seed=0))
    zoo.pickle("study_tpe", study, P245)
    zoo.joblib("study_tpe", study)
    zoo.pickle("best_trial", study.best_trial)
    zoo.pickle("trials", study.trials)


@recipe("optuna")
def optuna_samplers(zoo: Zoo) -> None:
    import optuna

    used = {
        "tpe": optuna.samplers.TPESampler(seed=0, multivariate=True),
        "random": optuna.samplers.RandomSampler(seed=0),
        "qmc": optuna.samplers.QMCSampler(seed=0),
        "grid": optuna.samplers.GridSampler({"x": [0, 1], "depth": [1, 2], "kind": ["a"]}),
        "partial_fixed": optuna.samplers.PartialFixedSampler({"kind": "a"},
                                                              optuna.samplers.RandomSampler(0)),
    }
    for name, sampler in used.items():
        _study(sampler, n_trials=3)
        zoo.pickle(f"sampler_{name}", sampler)
    # Brute force needs a finite search space, so it is saved before a run. (NSGA-II is left
    # out: in optuna 5 it holds a lock and does not pickle.)
    zoo.pickle("sampler_bruteforce_fresh", optuna.samplers.BruteForceSampler(seed=0))


@recipe("optuna")
def optuna_pruners_distributions(zoo: Zoo) -> None:
    import optuna
    from optuna import distributions as d

    pruners = [optuna.pruners.MedianPruner(n_startup_trials=2),
               optuna.pruners.HyperbandPruner(), optuna.pruners.SuccessiveHalvingPruner(),
               optuna.pruners.PercentilePruner(25.0)]
    zoo.pickle("pruners", pruners)
    zoo.pickle("distributions", [d.FloatDistribution(0, 1, log=False),
                                 d.IntDistribution(1, 10, step=3),
                                 d.CategoricalDistribution(["a", "b", None])], P245)
    zoo.pickle("study_median_pruner", _study(optuna.samplers.RandomSampler(seed=1), pruners[0]))
