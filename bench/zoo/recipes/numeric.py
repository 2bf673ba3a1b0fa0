"""numpy, scipy and sympy: arrays, sparse matrices, fitted distributions, expressions."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe

P245 = (2, 4, 5)


def _rng() -> Any:
    import numpy as np

    return np.random.default_rng(0)


# numpy ------------------------------------------------------------------------------------------


@recipe("numpy")
def np_ufuncs(zoo: Zoo) -> None:
    import numpy as np

    zoo.pickle("ufunc_add", np.add, P245)
    zoo.pickle("ufuncs", [np.sin, np.exp, np.log1p, np.maximum, np.isnan, np.matmul])
    zoo.pickle("ufunc_table", {"act": np.tanh, "clip": np.clip, "reduce": np.add.reduce})


@recipe("numpy")
def np_arrays_pickled(zoo: Zoo) -> None:
    import numpy as np

    rng = _rng()
    zoo.pickle("float64_matrix", rng.normal(size=(8, 4)), P245)
    zoo.pickle("int_and_bool", {"ids": np.arange(10, dtype=np.int32), "mask": rng.random(10) > 0.5})
    zoo.pickle("complex_fortran", np.asfortranarray(rng.normal(size=(3, 3)) + 1j))
    zoo.save("weights.dump.pkl", "ndarray.dump", rng.normal(size=(4, 4)).astype("f4").dump)


@recipe("numpy")
def np_masked_matrix_rec(zoo: Zoo) -> None:
    import numpy as np

    data = np.ma.masked_array([1.0, 2.0, -999.0, 4.0], mask=[0, 0, 1, 0], fill_value=-999.0)
    zoo.pickle("masked_array", data, (2, 5))
    zoo.pickle("matrix", np.matrix([[1, 2], [3, 4]]))
    rec = np.rec.fromrecords([(1, 2.5, b"ab"), (2, 3.5, b"cd")], names="id,score,tag")
    zoo.pickle("recarray", rec)


@recipe("numpy")
def np_structured_and_datetime(zoo: Zoo) -> None:
    import numpy as np

    dtype = np.dtype([("name", "U8"), ("pos", "f4", (3,)), ("ok", "?")])
    arr = np.array([("a", (1, 2, 3), True), ("b", (4, 5, 6), False)], dtype=dtype)
    zoo.pickle("structured", arr)
    zoo.save("structured.npy", "np.save", lambda p: np.save(p, arr))
    days = np.arange("2024-01-01", "2024-01-11", dtype="datetime64[D]")
    zoo.pickle("datetime64", {"days": days, "gaps": np.diff(days).astype("timedelta64[h]")})
    zoo.save("datetime64.npy", "np.save", lambda p: np.save(p, days.astype("datetime64[ns]")))


@recipe("numpy")
def np_object_arrays(zoo: Zoo) -> None:
    import numpy as np

    ragged = np.empty(3, dtype=object)
    ragged[:] = [np.arange(2), np.arange(3), np.arange(5)]
    zoo.save("ragged_objects.npy", "np.save", lambda p: np.save(p, ragged, allow_pickle=True))
    mixed = np.array([{"label": "cat"}, "text", 3, None], dtype=object)
    zoo.save("mixed_objects.npy", "np.save", lambda p: np.save(p, mixed, allow_pickle=True))
    zoo.save(
        "archive_objects.npz",
        "np.savez",
        lambda p: np.savez(p, x=np.arange(6).reshape(2, 3), meta=mixed),
    )


@recipe("numpy")
def np_plain_npy(zoo: Zoo) -> None:
    import numpy as np

    rng = _rng()
    for dtype in ("float16", "float32", "int8", "uint64", "complex128", "bool", "U5", "S3"):
        arr = rng.integers(0, 9, size=6).astype(dtype)
        zoo.save(f"plain_{dtype}.npy", "np.save", lambda p, a=arr: np.save(p, a))
    zoo.save(
        "embeddings.npz",
        "np.savez_compressed",
        lambda p: np.savez_compressed(p, emb=rng.normal(size=(16, 8)), ids=np.arange(16)),
    )


@recipe("numpy")
def np_random_state(zoo: Zoo) -> None:
    import numpy as np

    zoo.pickle("generator_pcg64", np.random.default_rng(0))
    zoo.pickle("random_state", np.random.RandomState(0), P245)
    zoo.pickle("get_state", np.random.get_state())
    gens = [np.random.Generator(bg(0)) for bg in (np.random.MT19937, np.random.Philox)]
    zoo.pickle("bit_generators", [*gens, np.random.SFC64(1), np.random.SeedSequence(42)])


@recipe("numpy")
def np_scalars_dtypes_poly(zoo: Zoo) -> None:
    import numpy as np

    scalars = [np.float64(1.5), np.int32(7), np.bool_(True), np.datetime64("2024-02-29"),
               np.str_("x"), np.complex64(1 + 2j), np.timedelta64(3, "s")]
    zoo.pickle("scalars", scalars, P245)
    zoo.pickle("dtypes", [np.dtype("f8"), np.dtype("<M8[ns]"), np.dtype([("a", "i4")])])
    poly = np.polynomial.Polynomial([1, 2, 3])
    zoo.pickle("polynomials", [poly, np.polynomial.Chebyshev([0, 1]), np.poly1d([1, 0, -1])])


# scipy ------------------------------------------------------------------------------------------


def _sparse_dense() -> Any:
    import numpy as np

    rng = _rng()
    dense = rng.random((6, 6))
    dense[dense < 0.6] = 0
    return dense + np.eye(6)


@recipe("scipy")
def sp_sparse_matrices(zoo: Zoo) -> None:
    from scipy import sparse

    dense = _sparse_dense()
    for fmt in ("csr", "csc", "coo", "bsr", "dia", "dok", "lil"):
        zoo.pickle(f"{fmt}_matrix", getattr(sparse, f"{fmt}_matrix")(dense))
        zoo.pickle(f"{fmt}_array", getattr(sparse, f"{fmt}_array")(dense))


@recipe("scipy")
def sp_sparse_npz(zoo: Zoo) -> None:
    from scipy import sparse

    dense = _sparse_dense()
    for fmt in ("csr", "csc", "coo", "bsr", "dia"):
        matrix = getattr(sparse, f"{fmt}_matrix")(dense)
        zoo.save(f"{fmt}.npz", "scipy.sparse.save_npz", lambda p, m=matrix: sparse.save_npz(p, m))


@recipe("scipy")
def sp_frozen_distributions(zoo: Zoo) -> None:
    import numpy as np
    from scipy import stats

    frozen = {
        "norm": stats.norm(loc=1.0, scale=2.0),
        "gamma": stats.gamma(2.0),
        "beta": stats.beta(2, 5),
        "poisson": stats.poisson(3.0),
        "t": stats.t(df=4),
        "mvn": stats.multivariate_normal(mean=[0, 0], cov=[[1, 0.2], [0.2, 1]]),
    }
    zoo.pickle("frozen_distributions", frozen, (2, 4, 5))
    hist = stats.rv_histogram(np.histogram(_rng().normal(size=200), bins=10))
    zoo.pickle("rv_histogram", hist)
    zoo.pickle("fitted_lognorm", stats.lognorm(*stats.lognorm.fit(_rng().lognormal(size=100))))
    zoo.pickle("gaussian_kde", stats.gaussian_kde(_rng().normal(size=50)))
    sample = _rng().normal(size=20)
    results = [stats.describe(sample), stats.linregress(np.arange(20.0), sample)]
    zoo.pickle("stats_results", [*results, stats.pearsonr(sample, sample[::-1])])


@recipe("scipy")
def sp_splines(zoo: Zoo) -> None:
    import numpy as np
    from scipy import interpolate

    x = np.linspace(0, 3, 12)
    y = np.sin(x)
    zoo.pickle("univariate_spline", interpolate.UnivariateSpline(x, y, s=0.1))
    zoo.pickle("bspline", interpolate.make_interp_spline(x, y, k=3))
    zoo.pickle("cubic_spline", interpolate.CubicSpline(x, y), (2, 5))
    zoo.pickle("interp1d", interpolate.interp1d(x, y, kind="linear"))
    zoo.pickle("pchip_akima", [interpolate.PchipInterpolator(x, y),
                               interpolate.Akima1DInterpolator(x, y)])
    grid = interpolate.RegularGridInterpolator((x, x), np.outer(y, y))
    zoo.pickle("regular_grid", grid)
    points = _rng().random((15, 2))
    zoo.pickle("rbf_interpolator", interpolate.RBFInterpolator(points, points.sum(1)))


@recipe("scipy")
def sp_optimize_results(zoo: Zoo) -> None:
    import numpy as np
    from scipy import optimize

    rosen = optimize.minimize(optimize.rosen, np.zeros(3), method="BFGS")
    zoo.pickle("minimize_bfgs", rosen)
    zoo.pickle("minimize_nelder_mead", optimize.minimize(optimize.rosen, [1.3, 0.7],
                                                         method="Nelder-Mead"))
    fit = optimize.least_squares(lambda p: p[0] * np.arange(5) + p[1] - np.arange(5), [0.0, 0.0])
    zoo.pickle("least_squares", fit)
    lp = optimize.linprog(c=[-1, 4], A_ub=[[-3, 1], [1, 2]], b_ub=[6, 4])
    zoo.pickle("linprog", lp)
    zoo.pickle("curve_fit", optimize.curve_fit(lambda t, a: a * t, np.arange(5.0), np.arange(5.0)))


@recipe("scipy")
def sp_spatial(zoo: Zoo) -> None:
    from scipy import spatial
    from scipy.spatial.transform import Rotation

    points = _rng().random((20, 3))
    zoo.pickle("kdtree", spatial.KDTree(points))
    zoo.pickle("ckdtree", spatial.cKDTree(points), (2, 5))
    zoo.pickle("rotation", Rotation.from_euler("xyz", [[10, 20, 30], [0, 0, 90]], degrees=True))
    zoo.pickle("distance_matrix", spatial.distance.squareform(spatial.distance.pdist(points)))


@recipe("scipy")
def sp_io(zoo: Zoo) -> None:
    from scipy import io

    dense = _sparse_dense()
    zoo.save("arrays.mat", "scipy.io.savemat", lambda p: io.savemat(p, {"x": dense, "n": 3}))
    zoo.save("matrix.mtx", "scipy.io.mmwrite", lambda p: io.mmwrite(str(p), dense))


# sympy ------------------------------------------------------------------------------------------


@recipe("sympy")
def sympy_expressions(zoo: Zoo) -> None:
    import sympy as sp

    x, y = sp.symbols("x y", real=True)
    expr = sp.sin(x) ** 2 + sp.exp(-y) * sp.Rational(3, 7)
    zoo.pickle("expression", expr, P245)
    zoo.pickle("calculus", [sp.Integral(x**2, (x, 0, 1)), sp.diff(expr, x), sp.series(sp.cos(x))])
    zoo.pickle("equation_solution", {"eq": sp.Eq(x**2, 4), "roots": sp.solve(x**2 - 4, x)})


@recipe("sympy")
def sympy_matrices_polys(zoo: Zoo) -> None:
    import sympy as sp

    x = sp.Symbol("x")
    zoo.pickle("matrix", sp.Matrix([[1, x], [x**2, 3]]), P245)
    zoo.pickle("poly", sp.Poly(x**3 - 2 * x + 1, x))
    zoo.pickle("sets_and_numbers", [sp.Interval(0, 1), sp.FiniteSet(1, 2), sp.pi, sp.oo, sp.I,
                                    sp.Float("1.5", 30), sp.Piecewise((x, x > 0), (0, True))])


@recipe("sympy")
def sympy_functions(zoo: Zoo) -> None:
    import sympy as sp

    f = sp.Function("f")
    t = sp.Symbol("t", positive=True)
    zoo.pickle("ode", sp.Eq(f(t).diff(t), -2 * f(t)), P245)
    zoo.pickle("special", [sp.gamma(t), sp.besselj(0, t), sp.Sum(1 / t**2, (t, 1, sp.oo))])

