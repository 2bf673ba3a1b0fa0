"""pandas, polars, pyarrow and xarray: frames, series, indexes and arrays of every dtype."""

from __future__ import annotations

from typing import Any

from . import Zoo, recipe

P245 = (2, 4, 5)


# pandas -----------------------------------------------------------------------------------------


def _every_dtype() -> Any:
    import numpy as np
    import pandas as pd

    n = 6
    return pd.DataFrame(
        {
            "float": np.linspace(0, 1, n),
            "int": np.arange(n),
            "object": list("abcdef"),
            "category": pd.Categorical(list("xyxyzx"), categories=["x", "y", "z"], ordered=True),
            "datetime": pd.date_range("2024-01-01", periods=n, freq="D"),
            "datetime_tz": pd.date_range("2024-03-30", periods=n, freq="h", tz="Europe/Paris"),
            "timedelta": pd.to_timedelta(np.arange(n), unit="min"),
            "period": pd.period_range("2024-01", periods=n, freq="M"),
            "interval": pd.interval_range(0, n),
            "sparse": pd.arrays.SparseArray([0, 0, 1, 0, 2, 0]),
            "Int64": pd.array([1, None, 3, 4, None, 6], dtype="Int64"),
            "boolean": pd.array([True, False, None, True, True, False], dtype="boolean"),
            "string": pd.array(["a", None, "c", "d", "e", "f"], dtype="string"),
            "Float64": pd.array([0.5, None, 1.5, 2.0, 2.5, 3.0], dtype="Float64"),
            "bool": [True, False] * 3,
        }
    )


@recipe("pandas")
def pd_every_dtype(zoo: Zoo) -> None:
    df = _every_dtype()
    zoo.save("every_dtype.pkl", "df.to_pickle", df.to_pickle)
    zoo.save("every_dtype.pkl.gz", "df.to_pickle",
             lambda p: df.to_pickle(p, compression={"method": "gzip", "mtime": 0}))
    zoo.save("every_dtype.p2.pkl", "df.to_pickle", lambda p: df.to_pickle(p, protocol=2))
    zoo.pickle("every_dtype", df, (5,))


@recipe("pandas")
def pd_series(zoo: Zoo) -> None:
    df = _every_dtype()
    for column in ("category", "datetime_tz", "period", "interval", "sparse", "Int64", "string"):
        zoo.save(f"series_{column}.pkl", "series.to_pickle", df[column].to_pickle)
    zoo.pickle("series_boolean", df["boolean"], P245)


@recipe("pandas")
def pd_indexes(zoo: Zoo) -> None:
    import numpy as np
    import pandas as pd

    arrays = [["a", "a", "b", "b"], [1, 2, 1, 2]]
    multi = pd.DataFrame(
        np.arange(8).reshape(4, 2),
        index=pd.MultiIndex.from_arrays(arrays, names=["k", "n"]),
        columns=pd.Index(["u", "v"], name="col"),
    )
    zoo.save("multiindex_frame.pkl", "df.to_pickle", multi.to_pickle)
    indexes = {
        "range": pd.RangeIndex(0, 20, 2),
        "datetime": pd.date_range("2024-01-01", periods=4, freq="W", tz="UTC"),
        "period": pd.period_range("2020Q1", periods=4, freq="Q"),
        "interval": pd.IntervalIndex.from_breaks([0, 1, 5, 10]),
        "categorical": pd.CategoricalIndex(["a", "b", "a"]),
        "timedelta": pd.timedelta_range("1 day", periods=3),
    }
    zoo.pickle("indexes", indexes, P245)
    ts = pd.Series(np.arange(4.0), index=indexes["datetime"], name="ts")
    zoo.save("datetime_indexed.pkl", "series.to_pickle", ts.to_pickle)


@recipe("pandas")
def pd_scalars_offsets(zoo: Zoo) -> None:
    import pandas as pd

    scalars = [pd.Timestamp("2024-01-01 12:00", tz="US/Eastern"), pd.Timedelta("1h30m"),
               pd.Period("2024-05", freq="M"), pd.Interval(0, 1, closed="left"), pd.NaT, pd.NA,
               pd.offsets.BusinessDay(2), pd.DateOffset(months=1), pd.CategoricalDtype(["a"])]
    zoo.pickle("scalars_offsets", scalars, P245)


@recipe("pandas")
def pd_arrow_backed(zoo: Zoo) -> None:
    import pandas as pd

    df = pd.DataFrame({"s": ["a", "b", None], "i": [1, 2, None]}).convert_dtypes(
        dtype_backend="pyarrow"
    )
    zoo.save("arrow_backed.pkl", "df.to_pickle", df.to_pickle)
    zoo.save("frame.parquet", "df.to_parquet", lambda p: _every_dtype().drop(
        columns=["sparse", "period", "interval"]).to_parquet(p))


@recipe("pandas")
def pd_results(zoo: Zoo) -> None:
    import pandas as pd

    df = _every_dtype()
    grouped = df.groupby("category", observed=True)["float"].agg(["mean", "sum"])
    zoo.save("groupby_result.pkl", "df.to_pickle", grouped.to_pickle)
    pivot = pd.pivot_table(df, values="int", index="object", columns="bool", aggfunc="sum")
    zoo.save("pivot.pkl.bz2", "df.to_pickle", pivot.to_pickle)
    df.attrs["source"] = "zoo"
    zoo.save("with_attrs.pkl", "pd.to_pickle", lambda p: pd.to_pickle(df, p))


# polars -----------------------------------------------------------------------------------------


def _polars_frame() -> Any:
    import datetime as dt

    import polars as pl

    return pl.DataFrame(
        {
            "i": [1, 2, None],
            "f": [0.5, 1.5, 2.5],
            "s": ["a", "b", "c"],
            "cat": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", "hi", "lo"], dtype=pl.Enum(["lo", "hi"])),
            "ts": pl.Series([dt.datetime(2024, 1, d) for d in (1, 2, 3)]).dt.replace_time_zone(
                "Asia/Tokyo"
            ),
            "date": [dt.date(2024, 1, 1)] * 3,
            "dur": [dt.timedelta(seconds=s) for s in (1, 2, 3)],
            "list": [[1, 2], [], [3]],
            "struct": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": None}],
            "dec": pl.Series(["1.10", "2.20", "3.30"]).str.to_decimal(),
        }
    )


@recipe("polars")
def polars_dataframe(zoo: Zoo) -> None:
    zoo.pickle("dataframe", _polars_frame(), P245)


@recipe("polars")
def polars_series_lazy(zoo: Zoo) -> None:
    import polars as pl

    df = _polars_frame()
    zoo.pickle("series", [df["cat"], df["ts"], df["list"]], P245)
    lazy = df.lazy().filter(pl.col("f") > 1).group_by("cat").agg(pl.col("i").sum())
    zoo.pickle("lazyframe", lazy)
    zoo.pickle("dtypes_expr", [pl.Datetime("us", "UTC"), pl.List(pl.Int8), pl.col("i") * 2])


@recipe("polars")
def polars_files(zoo: Zoo) -> None:
    df = _polars_frame().drop("dec")
    zoo.save("frame.parquet", "df.write_parquet", df.write_parquet)
    zoo.save("frame.arrow", "df.write_ipc", df.write_ipc)


# pyarrow ----------------------------------------------------------------------------------------


def _arrow_table() -> Any:
    import datetime as dt
    import decimal

    import pyarrow as pa

    return pa.table(
        {
            "i": pa.array([1, None, 3], pa.int32()),
            "s": pa.array(["a", "b", "a"]).dictionary_encode(),
            "ts": pa.array([dt.datetime(2024, 1, 1)] * 3, pa.timestamp("ms", tz="UTC")),
            "dec": pa.array([decimal.Decimal("1.25")] * 3, pa.decimal128(5, 2)),
            "lst": pa.array([[1], [2, 3], []], pa.list_(pa.int64())),
            "st": pa.array([{"x": 1.0}, {"x": 2.0}, None]),
            "bin": pa.array([b"\x00", b"ab", None]),
        },
        metadata={"origin": "zoo"},
    )


@recipe("pyarrow")
def pa_table(zoo: Zoo) -> None:
    table = _arrow_table()
    zoo.pickle("table", table, P245)
    zoo.pickle("record_batch", table.to_batches()[0])
    zoo.pickle("schema", table.schema, P245)


@recipe("pyarrow")
def pa_arrays(zoo: Zoo) -> None:
    import pyarrow as pa

    table = _arrow_table()
    zoo.pickle("arrays", [table.column(n).chunk(0) for n in table.column_names], P245)
    zoo.pickle("chunked_array", pa.chunked_array([[1, 2], [3]]))
    zoo.pickle("scalars", [pa.scalar(1.5), pa.scalar("x"), pa.scalar([1, 2])])


@recipe("pyarrow")
def pa_files(zoo: Zoo) -> None:
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = _arrow_table()
    zoo.save("table.parquet", "pq.write_table", lambda p: pq.write_table(table, p))
    zoo.save("table.feather", "feather.write_feather", lambda p: feather.write_feather(table, p))


# xarray -----------------------------------------------------------------------------------------


def _dataset() -> Any:
    import numpy as np
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=4)
    return xr.Dataset(
        {
            "temp": (("time", "x"), rng.normal(size=(4, 3)), {"units": "degC"}),
            "flag": (("time",), np.array([True, False, True, True])),
        },
        coords={"time": times, "x": [10, 20, 30], "site": ("x", ["a", "b", "c"])},
        attrs={"title": "zoo"},
    )


@recipe("xarray")
def xr_dataset(zoo: Zoo) -> None:
    zoo.pickle("dataset", _dataset(), P245)


@recipe("xarray")
def xr_dataarray(zoo: Zoo) -> None:
    ds = _dataset()
    zoo.pickle("dataarray", ds["temp"], P245)
    zoo.pickle("reduced", ds.mean("time"))


@recipe("xarray")
def xr_netcdf(zoo: Zoo) -> None:
    ds = _dataset().drop_vars("flag")
    zoo.save("dataset.nc", "ds.to_netcdf", lambda p: ds.to_netcdf(p, engine="scipy"))
