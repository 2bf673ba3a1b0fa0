"""The allowlist: what it admits, how names are canonicalised, how users extend it."""

from __future__ import annotations

import enum
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.findings import Severity
from bastion.scan import ScanError
from bastion.scan.pickle import Policy
from bastion.scan.pickle.policy import TORCHSCRIPT_NAMES


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy.core.* aliases
def test_every_allowlisted_name_resolves_to_a_class_or_rebuild_helper() -> None:
    policy = Policy.curated()
    assert len(policy.allowed) > 500
    for entry in sorted(policy.allowed):
        module, name = entry.split(":")
        obj = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        if not inspect.isclass(obj):
            # functions are only rebuild helpers, numpy/copyreg reconstructors and codecs.encode
            assert (name.startswith(("_rebuild", "__pyx_unpickle", "_reconstruct", "__"))
                    or name in {"scalar", "_frombuffer", "encode", "_mareconstruct", "newObj",
                                "hash"}
                    or entry in TORCHSCRIPT_NAMES  # each returns its argument (reviewed)
                    or not callable(obj)), entry


_ECOSYSTEM = Path(inspect.getfile(Policy)).with_name("ecosystem.json")
_DISTRIBUTIONS = {"xgboost": "xgboost-cpu", "python-stdlib": ""}


def _sampled(entry: str) -> bool:
    """One entry in 25, the same each run: the full review of the ~13,000 installed here
    takes minutes; ``tools/allowlist.py review`` is the full check."""
    return hashlib.sha256(entry.encode()).digest()[0] < 256 // 25


def _reviewed_here() -> Iterator[tuple[str, str, str]]:
    """(library, entry, rule) for each library installed here at a version it was reviewed at."""
    for library, spec in json.loads(_ECOSYSTEM.read_text("utf-8"))["libraries"].items():
        dist = _DISTRIBUTIONS.get(library, library)
        try:
            version = importlib.metadata.version(dist) if dist else platform.python_version()
        except importlib.metadata.PackageNotFoundError:
            continue
        at = spec.get("at", {})
        for rule, entries in spec["rules"].items():
            for entry in entries:
                if version in at.get(entry, spec["versions"]):
                    yield library, entry, rule


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning",
                            "ignore::PendingDeprecationWarning", "ignore::UserWarning")
def test_each_ecosystem_entry_is_what_its_rule_says_at_the_reviewed_version() -> None:
    """tools/allowlist.py admitted each entry by a rule; at the versions reviewed, each still
    imports, is the kind of object its rule admits, and reaches no sink the rules name."""
    from tools.allowlist import RULES, _nested_class, review

    checked: set[str] = set()
    for library, entry, rule in _reviewed_here():
        checked.add(library)
        module, _, name = entry.partition(":")
        obj: object = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        assert rule in RULES, entry
        if rule.startswith("class."):
            assert inspect.isclass(obj), entry
            assert rule != "class.enum" or issubclass(obj, enum.Enum), entry
        elif rule == "function.ufunc":
            assert type(obj).__name__ == "ufunc", entry
        elif rule == "function.reconstructor":
            assert callable(obj) and not inspect.isclass(obj), entry
        elif rule == "function.data":
            assert callable(obj), entry
        if rule != "reviewed.by-hand":  # nothing the denylist names (a class defined in a
            # class's body is dotted by its own qualified name: its outer class is judged)
            outer = name.split(".", 1)[0] if _nested_class(module, name) else name
            assert Policy.curated().verdict(module, outer).severity is Severity.HIGH, entry
        if rule != "reviewed.by-hand" and _sampled(entry):  # the rule still admits it
            assert review(entry).rule == rule, (entry, review(entry).reason)
    assert {"numpy", "scipy", "scikit-learn", "torch", "python-stdlib"} <= checked, (
        f"only {sorted(checked)} are installed at a reviewed version: rerun tools/allowlist.py"
    )


def test_the_default_policy_holds_the_ecosystem_and_the_curated_list() -> None:
    default, curated = Policy.default(), Policy.curated()
    assert default.ecosystem and not curated.ecosystem and curated.allowed == default.allowed
    assert default.verdict("pandas.core.frame", "DataFrame").allowed
    assert not curated.verdict("pandas.core.frame", "DataFrame").allowed
    assert default.verdict("zoneinfo", "ZoneInfo._unpickle").allowed
    # what the review refused stays out
    assert not default.verdict("pandas.io.pytables", "HDFStore").allowed
    assert not default.verdict("numpy", "memmap").allowed


def test_torchscript_classes_are_inert_to_pythons_unpickler() -> None:
    """Why ``__torch__.*`` may pass: Python cannot import it, so a pickle naming one fails
    to load; only TorchScript's own unpickler resolves it (to code the scanner reviews)."""
    import pickle

    assert Policy.default().verdict("__torch__.torch.nn.modules.linear", "Linear").allowed
    assert not Policy.default().verdict("__torch__", "__builtins__").allowed  # dunder: never
    with pytest.raises(ModuleNotFoundError, match="__torch__"):
        pickle.loads(b"c__torch__.torch.nn.modules.linear\nLinear\n.")


@pytest.mark.parametrize(("module", "name", "proto", "severity", "qualified"), [
    ("os", "system", 4, Severity.CRITICAL, "os.system"),
    ("__builtin__", "eval", 2, Severity.CRITICAL, "builtins.eval"),
    ("__builtin__", "set", 2, Severity.INFO, "builtins.set"),
    ("copy_reg", "_reconstructor", 1, Severity.INFO, "copyreg._reconstructor"),
    ("torch", "load", 4, Severity.CRITICAL, "torch.load"),
    ("numpy", "load", 4, Severity.CRITICAL, "numpy.load"),
    ("collections", "OrderedDict.__init__.__globals__", 4, Severity.CRITICAL,
     "collections.OrderedDict.__init__.__globals__"),
    ("mylib.models", "Net", 4, Severity.HIGH, "mylib.models.Net"),
    ("torch._utils", "_rebuild_tensor_v2", 2, Severity.INFO, "torch._utils._rebuild_tensor_v2"),
])
def test_verdicts(module: str, name: str, proto: int, severity: Severity, qualified: str) -> None:
    v = Policy.default().verdict(module, name, proto)
    assert (v.severity, v.qualified, v.allowed) == (severity, qualified,
                                                    severity is Severity.INFO)


def test_compat_names_are_not_mapped_from_protocol_3() -> None:
    # from protocol 3 on the unpickler imports __builtin__ literally (which does not exist)
    assert Policy.default().verdict("__builtin__", "set", 3).allowed is False


def test_allowing_extends_in_each_spelling() -> None:
    policy = Policy.default().allowing(["mylib.models.Net", "other:Thing", "plugins.*"])
    assert policy.verdict("mylib.models", "Net").allowed
    assert policy.verdict("other", "Thing").allowed
    assert policy.verdict("plugins.sub", "Anything").allowed
    assert not policy.verdict("plugins", "a.b").allowed  # never a dotted walk
    assert not policy.verdict("mylib.models", "Other").allowed


@pytest.mark.parametrize("bad", ["", "noname", "os.", "a b.c", ":x"])
def test_bad_allow_entries_are_clear_errors(bad: str) -> None:
    with pytest.raises(ScanError, match="allowlist entry") as info:
        Policy.default().allowing([bad])
    assert info.value.hint


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('allow = ["mylib.models.Net"]\n')
    assert Policy.default().with_file(path).verdict("mylib.models", "Net").allowed


@pytest.mark.parametrize(("text", "match"), [
    ("allow = [", "not valid TOML"),
    ('allow = "x.y"', "must hold only"),
    ('deny = ["os.system"]', "must hold only"),
])
def test_bad_policy_files_are_clear_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ScanError, match=match):
        Policy.default().with_file(path)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="cannot read the policy file"):
        Policy.default().with_file(tmp_path / "nope.toml")
