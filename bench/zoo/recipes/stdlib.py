"""The standard library's own picklable values (time zones, dates, collections, numbers, paths,
enums, patterns, ...), each group pickled with protocols 2, 4 and 5, plus a dataclass, enum
and namedtuple as a user's module would define them."""

from __future__ import annotations

import argparse
import array
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import functools
import http
import ipaddress
import logging
import operator
import pathlib
import re
import socket
import statistics
import types
import uuid
import zoneinfo

from . import Zoo, recipe

P245 = (2, 4, 5)


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Permission(enum.IntFlag):
    READ = 4
    WRITE = 2


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str
    lr: float = 0.01
    tags: tuple[str, ...] = ()
    started: dt.datetime | None = None


Point = collections.namedtuple("Point", ["x", "y"])


@recipe("python-stdlib")
def stdlib_time_zones(zoo: Zoo) -> None:
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
    zoo.pickle("zoneinfo", [paris, zoneinfo.ZoneInfo("America/New_York"),
                            zoneinfo.ZoneInfo("UTC")], P245)
    values = {
        "aware_utc": dt.datetime(2024, 3, 31, 1, 30, tzinfo=dt.UTC),
        "aware_zoneinfo": dt.datetime(2024, 3, 31, 3, 30, tzinfo=paris),
        "fixed_offset": dt.datetime(2024, 1, 1, tzinfo=ist),
        "naive": dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
        "date": dt.date(2024, 2, 29),
        "time": dt.time(23, 59, 59, tzinfo=dt.UTC),
        "delta": dt.timedelta(days=1, seconds=30),
    }
    zoo.pickle("datetimes", values, P245)


@recipe("python-stdlib")
def stdlib_namespace_and_collections(zoo: Zoo) -> None:
    args = argparse.Namespace(lr=0.1, epochs=5, data=pathlib.PurePosixPath("/data"), verbose=True)
    zoo.pickle("argparse_namespace", args, P245)
    counts = collections.defaultdict(int, {"a": 2})
    groups = collections.defaultdict(list, {"x": [1, 2]})
    values = {
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "defaultdict_int": counts,
        "defaultdict_list": groups,
        "counter": collections.Counter("mississippi"),
        "deque": collections.deque([1, 2, 3], maxlen=5),
        "chainmap": collections.ChainMap({"a": 1}, {"b": 2}),
        "simple_namespace": types.SimpleNamespace(a=1, b="two"),
    }
    zoo.pickle("collections", values, P245)


@recipe("python-stdlib")
def stdlib_numbers_ids_paths(zoo: Zoo) -> None:
    values = {
        "decimal": decimal.Decimal("3.1415926535897932384626"),
        "decimal_special": [decimal.Decimal("NaN"), decimal.Decimal("-Infinity")],
        "fraction": fractions.Fraction(22, 7),
        "complex": 1 + 2j,
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "paths": [pathlib.PurePosixPath("/tmp/x.txt"), pathlib.PureWindowsPath(r"C:\\data"),
                  pathlib.Path("relative/file.csv")],
        "ip": [ipaddress.ip_address("192.0.2.1"), ipaddress.ip_network("2001:db8::/32")],
        "normal_dist": statistics.NormalDist(0.0, 1.0),
    }
    zoo.pickle("numbers_ids_paths", values, P245)


@recipe("python-stdlib")
def stdlib_enums_patterns(zoo: Zoo) -> None:
    zoo.pickle("stdlib_enums", [http.HTTPStatus.OK, http.HTTPMethod.GET,
                                re.IGNORECASE | re.MULTILINE, socket.AddressFamily.AF_INET], P245)
    patterns = [re.compile(r"\d{4}-\d{2}-\d{2}"), re.compile(rb"^\x00+", re.DOTALL),
                re.compile(r"(?P<word>\w+)", re.IGNORECASE | re.UNICODE)]
    zoo.pickle("re_patterns", patterns, P245)


@recipe("python-stdlib")
def stdlib_builtins_and_callables(zoo: Zoo) -> None:
    values = {
        "containers": [{1, 2}, frozenset("ab"), (1, (2, 3)), b"\x00\xff", bytearray(b"ab")],
        "range_slice": [range(0, 10, 2), slice(1, None, 2), Ellipsis, NotImplemented, None],
        "array": array.array("d", [1.0, 2.0]),
        "builtin_functions": [len, max, sorted, abs],
        "partial": functools.partial(int, base=2),
        "operators": [operator.itemgetter(0, 2), operator.attrgetter("real"),
                      operator.methodcaller("split", ",")],
        "types": [int, str, dict, type(None)],
        "logger": logging.getLogger("zoo.train"),
    }
    zoo.pickle("builtins_callables", values, P245)


@recipe("python-stdlib")
def stdlib_user_classes(zoo: Zoo) -> None:
    config = RunConfig("baseline", tags=("a", "b"), started=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    zoo.pickle("dataclass", config, P245)
    zoo.pickle("enums", [Colour.RED, Permission.READ | Permission.WRITE], P245)
    zoo.pickle("namedtuple", [Point(1, 2), Point(x=3.5, y=-1)], P245)


@recipe("python-stdlib")
def stdlib_every_protocol(zoo: Zoo) -> None:
    """One mixed record, pickled with every protocol from 0 to 5."""
    record = {
        "when": dt.datetime(2024, 5, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo")),
        "args": argparse.Namespace(seed=0),
        "price": decimal.Decimal("9.99"),
        "counts": collections.Counter("abca"),
        "id": uuid.UUID(int=7),
        "pattern": re.compile("x+"),
        "path": pathlib.PurePosixPath("a/b"),
    }
    zoo.pickle("mixed_record", record, range(6))
