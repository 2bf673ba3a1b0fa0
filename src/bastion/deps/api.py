"""An OSV-compatible HTTP API as an advisory source (``--osv-url``), for networks that have one.

It asks ``POST {url}/v1/querybatch`` which advisories affect each package version, following
``next_page_token``, then fetches each record with ``GET {url}/v1/vulns/{id}`` for its aliases,
fixed versions and severity. The server's matching is taken as given; any HTTP or parse failure
stops the audit (fail closed) rather than reporting the package clean.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, Final

from bastion.deps import _osv
from bastion.deps.interface import DatabaseInfo, DepsError, Package, Record

__all__ = ["OsvApi"]

_BATCH: Final = 1000  # the OSV API's limit on queries per batch
_MAX_RESPONSE: Final = 64 * 1024 * 1024


class OsvApi:
    """An OSV API at ``url`` (the base, e.g. ``https://api.osv.dev``)."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise DepsError(
                f"the OSV API address {url!r} is not an http(s) URL",
                hint="pass the API's base URL, e.g. https://api.osv.dev", param="osv_url",
            )
        self._url = url.rstrip("/")
        self._timeout = timeout

    def info(self) -> DatabaseInfo:
        """A live API: no import time, no snapshot age."""
        return DatabaseInfo(self._url, "OSV API", None, None, 0)

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self._url + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST" if body is not None else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                data = response.read(_MAX_RESPONSE + 1)
        except (urllib.error.URLError, OSError) as exc:
            raise DepsError(
                f"OSV API {self._url}{path} failed: {exc}",
                hint="check --osv-url, or import an offline database with 'bastion deps db import'",
            ) from None
        if len(data) > _MAX_RESPONSE:
            raise DepsError(f"OSV API {self._url}{path} answered more than {_MAX_RESPONSE} bytes")
        try:
            return json.loads(data)
        except ValueError:
            raise DepsError(f"OSV API {self._url}{path} did not answer JSON") from None

    def _ids(self, packages: Sequence[Package]) -> list[set[str]]:
        ids: list[set[str]] = [set() for _ in packages]
        queries = [
            {"package": {"name": p.key, "ecosystem": _osv.ECOSYSTEM}, "version": p.version}
            for p in packages
        ]
        pending = list(range(len(queries)))
        tokens: dict[int, str] = {}
        while pending:
            batch, pending = pending[:_BATCH], pending[_BATCH:]
            body = {
                "queries": [
                    {**queries[i], **({"page_token": tokens[i]} if i in tokens else {})}
                    for i in batch
                ]
            }
            results = self._call("/v1/querybatch", body).get("results")
            if not isinstance(results, list) or len(results) != len(batch):
                raise DepsError(f"OSV API {self._url} answered a malformed querybatch result")
            for i, result in zip(batch, results, strict=True):
                for vuln in (result or {}).get("vulns", []):
                    ids[i].add(str(vuln["id"]))
                token = (result or {}).get("next_page_token")
                if token:
                    tokens[i] = str(token)
                    pending.append(i)
        return ids

    def affecting(self, packages: Sequence[Package]) -> dict[Package, list[Record]]:
        """Ask the API; records come back whole, withdrawn ones dropped."""
        resolved = [p for p in packages if p.version]
        ids = self._ids(resolved)
        records: dict[str, Record] = {}
        for ident in sorted(set().union(*ids)) if ids else []:
            quoted = urllib.parse.quote(ident, safe="")
            records[ident] = _osv.parse_record(self._call(f"/v1/vulns/{quoted}"), self._url)
        result: dict[Package, list[Record]] = {}
        for package, found in zip(resolved, ids, strict=True):
            hits = [records[i] for i in sorted(found) if "withdrawn" not in records[i].data]
            if hits:
                result[package] = hits
        return result
