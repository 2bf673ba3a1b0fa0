"""A small OSV-compatible HTTP API on loopback, for comparing Bastion with pip-audit offline.

It serves ``POST /v1/query`` (what pip-audit asks), ``POST /v1/querybatch`` and
``GET /v1/vulns/{id}`` (what ``bastion deps audit --osv-url`` asks) over a fixed list of records.

pip-audit leaves version matching to the server, so the server needs a matcher of its own. This one
is a line-by-line transcription of the OSV schema's "Evaluation" pseudocode (IsVulnerable,
IncludedInVersions, IncludedInRanges, BeforeLimits) over PEP 440 versions, written independently
of ``bastion.deps._osv`` so that the two can disagree if either is wrong.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version


def _ge(v: Version, bound: str) -> bool:
    return bound == "0" or v >= Version(bound)


def _before_limits(v: Version, events: Sequence[dict[str, str]]) -> bool:
    limits = [e["limit"] for e in events if "limit" in e]
    if not limits:
        return True
    return any(v < Version(limit) for limit in limits)


def _sort_key(event: dict[str, str]) -> tuple[int, Version]:
    (value,) = (event[k] for k in ("introduced", "fixed", "last_affected", "limit") if k in event)
    return (0, Version("0")) if value == "0" else (1, Version(value))


def _equal(listed: str, v: Version) -> bool:
    try:
        return Version(listed) == v
    except InvalidVersion:
        return False


def _orderable(events: Sequence[dict[str, str]]) -> bool:
    try:
        for event in events:
            _sort_key(event)
    except InvalidVersion:
        return False
    return True


def is_vulnerable(record: dict[str, Any], name: str, version: str) -> bool:
    """The schema's IsVulnerable for a PyPI package at a PEP 440 version."""
    v = Version(version)
    for affected in record.get("affected", []):
        package = affected["package"]
        if package["ecosystem"] != "PyPI" or canonicalize_name(package["name"]) != name:
            continue
        if any(_equal(listed, v) for listed in affected.get("versions", [])):
            return True
        for rng in affected.get("ranges", []):
            if rng["type"] != "ECOSYSTEM" or not _orderable(rng["events"]):
                continue  # a range with a non-PEP 440 bound is skipped here (Bastion: affected)
            if not _before_limits(v, rng["events"]):
                continue
            vulnerable = False
            for evt in sorted(rng["events"], key=_sort_key):
                if "introduced" in evt and _ge(v, evt["introduced"]):
                    vulnerable = True
                elif "fixed" in evt and v >= Version(evt["fixed"]):  # noqa: SIM114 - as specified
                    vulnerable = False
                elif "last_affected" in evt and v > Version(evt["last_affected"]):
                    vulnerable = False
            if vulnerable:
                return True
    return False


class _Handler(BaseHTTPRequestHandler):
    page_size: int | None
    records: dict[str, dict[str, Any]]
    by_name: dict[str, list[dict[str, Any]]]
    requests: list[str]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _matches(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        name = canonicalize_name(query["package"]["name"])
        return [
            r
            for r in self.by_name.get(name, [])
            if is_vulnerable(r, name, query["version"])  # withdrawn ones too, as osv.dev does
        ]

    def _page(self, query: dict[str, Any]) -> dict[str, Any]:
        """One querybatch result, cut into pages of ``page_size`` with a ``next_page_token``."""
        found = [{"id": r["id"], "modified": r["modified"]} for r in self._matches(query)]
        start = int(query.get("page_token", 0))
        end = len(found) if self.page_size is None else start + self.page_size
        result: dict[str, Any] = {"vulns": found[start:end]}
        if end < len(found):
            result["next_page_token"] = str(end)
        return result

    def do_POST(self) -> None:
        self.requests.append(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/query":
            found = self._matches(body)
            self._send(200, {"vulns": found} if found else {})
        elif self.path == "/v1/querybatch":
            self._send(200, {"results": [self._page(q) for q in body["queries"]]})
        else:
            self._send(404, {"message": "not found"})

    def do_GET(self) -> None:
        self.requests.append(self.path)
        ident = self.path.removeprefix("/v1/vulns/")
        if self.path.startswith("/v1/vulns/") and ident in self.records:
            self._send(200, self.records[ident])
        else:
            self._send(404, {"message": "not found"})


@contextmanager
def serve(
    records: Sequence[dict[str, Any]], *, page_size: int | None = None
) -> Iterator[tuple[str, list[str]]]:
    """Run the endpoint on 127.0.0.1 (a free port); yield its base URL and the request log.

    ``page_size`` makes querybatch answer in pages, as osv.dev does for long results.
    """
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        names = {canonicalize_name(a["package"]["name"]) for a in record.get("affected", [])}
        for name in names:
            by_name.setdefault(name, []).append(record)
    attributes = {
        "records": {r["id"]: r for r in records},
        "by_name": by_name,
        "requests": [],
        "page_size": page_size,
    }
    handler = type("Handler", (_Handler,), attributes)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
