"""One run of the sweep (:func:`run_config`), the pool that runs many, and the summary tables.

A run: plant the attack, train the variant's model on the poisoned set, measure clean accuracy
and the attack success rate (ASR: triggered test samples of the attacked classes classified as
the target), run each detector and score its flags against the planted rows; with ``asr``,
retrain on the cleaned sets (flagged rows removed) of Bastion's detectors and of the run's
best ART defence (by F1), and measure ASR and accuracy again.
Precision is 0 when nothing is flagged and something was planted. Controls (rate 0) score
only their false alarms.
"""

from __future__ import annotations

import multiprocessing
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisoning.attacks import Poisoned, poison
from poisoning.configs import Config
from poisoning.detectors import BASTION, DETECTORS, Failed, Flagged, NotApplicable, Run, detect
from poisoning.models import penultimate, predict, train

OK_RECALL, OK_PRECISION = 0.9, 0.8
HIGH = 0.05
"""Rates at or above this are the target's ("≥ 5 %"); lower rates get their own table."""


@dataclass(frozen=True)
class Options:
    """What each run does beyond training and Bastion's detectors."""

    detectors: tuple[str, ...]
    asr_after: bool = False
    """Retrain on each cleaned set and measure ASR and accuracy again."""
    cache: bool = True
    """Reuse trained torch models from ``bench/.work/poisoning/``."""


def _asr(model: str, net: Any, p: Poisoned) -> float | None:
    if p.x_triggered is None or not len(p.x_triggered):
        return None
    return float((predict(model, net, p.x_triggered) == p.target).mean())


def _accuracy(model: str, net: Any, p: Poisoned) -> float:
    return float((predict(model, net, p.x_test) == p.y_test).mean())


def _reference(config: Config, cache: bool) -> Any:
    """Clean-label's reference: the variant's model trained on the clean split."""
    from poisoning.attacks import load

    variant = config.variant
    x_tr, _, y_tr, _ = load(variant.dataset, config.seed)
    net = train(variant.model, x_tr, y_tr, config.seed, int(y_tr.max()) + 1, cache=cache)
    for param in net.parameters():
        param.requires_grad_(False)
    feats = penultimate(net)
    if variant.model == "cnn":
        return feats
    return lambda t: feats(t.reshape(len(t), -1))


def run_config(config: Config, options: Options) -> dict[str, Any]:
    """Everything measured on one config, as a JSON-ready record."""
    variant = config.variant
    reference = (_reference(config, options.cache)
                 if variant.family == "clean-label" and config.rate else None)
    p = poison(config, reference)
    net = train(variant.model, p.x_train, p.y_train, config.seed, p.n_classes,
                cache=options.cache)
    record: dict[str, Any] = {
        "id": config.id, "half": config.half, "dataset": variant.dataset,
        "family": variant.family, "variant": variant.id, "model": variant.model,
        "rate": config.rate, "seed": config.seed, "n_train": len(p.y_train),
        "poisoned": int(p.truth.sum()), "target": p.target, "source": p.source,
        "trigger": p.info, "clean_acc": _accuracy(variant.model, net, p),
        "asr_before": _asr(variant.model, net, p), "detectors": {}}
    run = Run(p, variant.model, net, variant.dataset, config.seed)
    for name in options.detectors:
        outcome = detect(name, run)
        entry: dict[str, Any]
        if isinstance(outcome, NotApplicable):
            entry = {"status": "n/a", "reason": outcome.reason}
        elif isinstance(outcome, Failed):
            entry = {"status": "failed", "reason": outcome.reason,
                     "seconds": outcome.seconds}
        else:
            entry = {"status": "ok", "seconds": outcome.seconds, **_score(outcome, p.truth),
                     "rows": outcome.rows}
        record["detectors"][name] = entry
    if options.asr_after and config.rate:
        for name in _retrained(record["detectors"]):
            entry = record["detectors"][name]
            keep = np.ones(len(p.y_train), bool)
            keep[entry["rows"]] = False
            again = train(variant.model, p.x_train[keep], p.y_train[keep], config.seed,
                          p.n_classes, cache=options.cache)
            entry["asr_after"] = _asr(variant.model, again, p)
            entry["clean_acc_after"] = _accuracy(variant.model, again, p)
    for entry in record["detectors"].values():
        entry.pop("rows", None)
    return record


def _retrained(entries: dict[str, dict[str, Any]]) -> list[str]:
    """Which detectors' cleaned sets are retrained: Bastion's, and the ART defence with the
    best F1 in this run (the baseline at its best; retraining all six is 3× the cost)."""
    ok = {n: e for n, e in entries.items() if e["status"] == "ok"}
    art = [n for n in ok if n not in BASTION]
    best = max(art, key=lambda n: ok[n].get("f1", -ok[n]["flagged"]), default=None)
    return [n for n in ok if n in BASTION or n == best]


def _score(outcome: Flagged, truth: np.ndarray) -> dict[str, Any]:
    flagged = np.zeros(len(truth), bool)
    flagged[outcome.rows] = True
    tp, n_flag, n_true = int((flagged & truth).sum()), int(flagged.sum()), int(truth.sum())
    out: dict[str, Any] = {"flagged": n_flag, "true_positives": tp}
    if n_true:
        precision = tp / n_flag if n_flag else 0.0
        recall = tp / n_true
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        out |= {"precision": precision, "recall": recall, "f1": f1}
    return out


def _init_worker() -> None:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def _job(args: tuple[int, Config, Options]) -> tuple[int, dict[str, Any]]:
    i, config, options = args
    return i, run_config(config, options)


def _cost(config: Config) -> float:
    """A rough relative cost, to start the slowest runs first."""
    v = config.variant
    return ({"cnn": 4.0, "mlp": 1.0, "sklearn-mlp": 1.0}[v.model]
            * (2.0 if v.dataset == "digits" else 0.5) * (3.0 if v.family == "clean-label" else 1))


def run_all(configs: Sequence[Config], options: Options, jobs: int,
            progress: Any = None) -> list[dict[str, Any]]:
    """Every config's record, in ``configs``' order whatever ``jobs`` is."""
    order = sorted(range(len(configs)), key=lambda i: -_cost(configs[i]))
    tasks = [(i, configs[i], options) for i in order]
    results: dict[int, dict[str, Any]] = {}
    if jobs <= 1:
        _init_worker()
        done: Iterable[tuple[int, dict[str, Any]]] = map(_job, tasks)
        for i, record in done:
            results[i] = record
            if progress:
                progress(len(results), len(configs), record)
    else:
        with multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
            for i, record in pool.imap_unordered(_job, tasks):
                results[i] = record
                if progress:
                    progress(len(results), len(configs), record)
    return [results[i] for i in range(len(configs))]


# --- summaries ------------------------------------------------------------------------------

def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def summarise(records: list[dict[str, Any]], detectors: Sequence[str], low: bool) -> list[
        dict[str, Any]]:
    """Per (half, dataset/family, detector): medians and the share of runs on target."""
    rows = []
    poisoned = [r for r in records if r["rate"] > 0 and (r["rate"] < HIGH) == low]
    keys = sorted({(r["half"], r["dataset"], r["family"]) for r in poisoned})
    for half, dataset, family in keys:
        group = [r for r in poisoned
                 if (r["half"], r["dataset"], r["family"]) == (half, dataset, family)]
        asr = [r["asr_before"] for r in group if r["asr_before"] is not None]
        row: dict[str, Any] = {"half": half, "dataset": dataset, "family": family,
                               "runs": len(group), "asr_before": _median(asr),
                               "clean_acc": _median([r["clean_acc"] for r in group]),
                               "detectors": {}}
        for name in detectors:
            entries = [r["detectors"][name] for r in group if name in r["detectors"]]
            ok = [e for e in entries if e["status"] == "ok"]
            after = [e["asr_after"] for e in ok if e.get("asr_after") is not None]
            row["detectors"][name] = {
                "runs": len(ok),
                "n/a": sum(e["status"] == "n/a" for e in entries),
                "failed": sum(e["status"] == "failed" for e in entries),
                "precision": _median([e["precision"] for e in ok]),
                "recall": _median([e["recall"] for e in ok]),
                "on_target": (sum(e["recall"] >= OK_RECALL and e["precision"] >= OK_PRECISION
                                  for e in ok) / len(ok)) if ok else None,
                "asr_after": _median(after),
                "seconds": _median([e["seconds"] for e in ok]),
            }
        rows.append(row)
    return rows


def false_alarms(records: list[dict[str, Any]], detectors: Sequence[str]) -> list[
        dict[str, Any]]:
    """Per (half, dataset, detector): the controls' flagged counts."""
    out = []
    controls = [r for r in records if r["rate"] == 0]
    for half, dataset in sorted({(r["half"], r["dataset"]) for r in controls}):
        group = [r for r in controls if (r["half"], r["dataset"]) == (half, dataset)]
        row: dict[str, Any] = {"half": half, "dataset": dataset, "runs": len(group),
                               "n_train": group[0]["n_train"], "detectors": {}}
        for name in detectors:
            ok = [r["detectors"][name] for r in group
                  if r["detectors"].get(name, {}).get("status") == "ok"]
            flagged = [e["flagged"] for e in ok]
            row["detectors"][name] = {
                "runs": len(ok), "median": _median([float(f) for f in flagged]),
                "max": max(flagged) if flagged else None,
                "clean": sum(f == 0 for f in flagged)}
        out.append(row)
    return out


def done_when(records: list[dict[str, Any]], detectors: Sequence[str]) -> dict[str, Any]:
    """The issue's target, held-out half at ≥ 5 %: median recall and precision for the patch
    families (solid and pattern together) and for blend, per detector."""
    out: dict[str, Any] = {}
    groups = {"patch": ("patch-solid", "patch-pattern"), "blend": ("blend",)}
    for label, families in groups.items():
        runs = [r for r in records if r["half"] == "held-out" and r["rate"] >= HIGH
                and r["family"] in families]
        out[label] = {}
        for name in detectors:
            ok = [r["detectors"][name] for r in runs
                  if r["detectors"].get(name, {}).get("status") == "ok"]
            out[label][name] = {"runs": len(ok),
                                "recall": _median([e["recall"] for e in ok]),
                                "precision": _median([e["precision"] for e in ok])}
    return out


def _cell(d: dict[str, Any]) -> str:
    if not d["runs"]:
        return "n/a" if d["n/a"] else (f"failed ×{d['failed']}" if d["failed"] else "–")
    text = f"{_f(d['precision'])} / {_f(d['recall'])} / {d['on_target']:.0%}"
    if d["asr_after"] is not None:
        text += f" → {_f(d['asr_after'])}"
    if d["failed"]:
        text += f" (failed ×{d['failed']})"
    return text


def markdown(records: list[dict[str, Any]], detectors: Sequence[str]) -> str:
    """The report: per half, ≥ 5 % and < 5 % tables, controls, and the done-when line."""
    head = "| dataset / family | runs | ASR | acc | " + " | ".join(detectors) + " |"
    rule = "|---|---:|---:|---:|" + "---|" * len(detectors)
    asr_note = (" → median ASR after retraining on the cleaned set (Bastion's detectors, and "
                "the ART defence with the best F1 in each run)") if any(
        e.get("asr_after") is not None for r in records for e in r["detectors"].values()) else ""
    lines = [f"Cells: median precision / median recall / share of runs with recall ≥ "
             f"{OK_RECALL} and precision ≥ {OK_PRECISION}{asr_note}. ASR: median attack "
             "success rate before cleaning; acc: median clean test accuracy. n/a: the detector "
             "cannot run on that model.", ""]
    for half in ("dev", "held-out"):
        for low in (False, True):
            rows = [r for r in summarise(records, detectors, low) if r["half"] == half]
            if not rows:
                continue
            lines += [f"### {half}, poison rate {'< 5 %' if low else '≥ 5 %'}", "", head, rule]
            for r in rows:
                cells = " | ".join(_cell(r["detectors"][d]) for d in detectors)
                lines.append(f"| {r['dataset']} / {r['family']} | {r['runs']} | "
                             f"{_f(r['asr_before'])} | {_f(r['clean_acc'])} | {cells} |")
            lines.append("")
        alarms = [r for r in false_alarms(records, detectors) if r["half"] == half]
        if alarms:
            lines += [f"### {half}, controls (rate 0): flagged rows, median (max), "
                      "runs with none", "",
                      "| dataset | runs | n_train | " + " | ".join(detectors) + " |",
                      "|---|---:|---:|" + "---|" * len(detectors)]
            for r in alarms:
                cells = " | ".join(
                    (f"{_f(d['median'], 0)} ({d['max']}), {d['clean']}/{d['runs']}"
                     if d["runs"] else "n/a") for d in r["detectors"].values())
                lines.append(f"| {r['dataset']} | {r['runs']} | {r['n_train']} | {cells} |")
            lines.append("")
    seconds = []
    for name in detectors:
        times = [r["detectors"][name]["seconds"] for r in records
                 if r["detectors"].get(name, {}).get("status") == "ok"]
        seconds.append(f"{name} {_f(_median(times))}")
    lines += ["Median seconds per run, detector alone: " + ", ".join(seconds) + ".", ""]
    return "\n".join(lines)


def done_when_line(records: list[dict[str, Any]], detectors: Sequence[str]) -> str:
    """One line: held-out median recall / precision at ≥ 5 % for patch and blend."""
    summary = done_when(records, detectors)
    parts = []
    for name in detectors:
        cells = []
        for label in ("patch", "blend"):
            d = summary[label][name]
            cells.append(f"{label} R {_f(d['recall'])} P {_f(d['precision'])} "
                         f"({d['runs']} runs)" if d["runs"] else f"{label} n/a")
        parts.append(f"{name}: " + ", ".join(cells))
    met = all(
        (d := summary[label][detectors[0]])["runs"] and d["recall"] >= OK_RECALL
        and d["precision"] >= OK_PRECISION for label in ("patch", "blend")) if detectors else False
    return (f"done-when (held-out, rate ≥ 5 %, target recall ≥ {OK_RECALL} and precision ≥ "
            f"{OK_PRECISION}; {detectors[0] if detectors else '-'} "
            f"{'MET' if met else 'not met'}): " + "; ".join(parts))


ALL_DETECTORS = tuple(DETECTORS)
