"""Hugging Face tokenizer configs: review the chat templates that transformers renders.

``tokenizer_config.json`` (and a processor's ``chat_template.json``) may hold ``chat_template``:
one Jinja template, or a list of ``{"name": ..., "template": ...}`` (a ``{name: template}``
object is accepted by transformers too). ``apply_chat_template`` and inference servers (TGI,
vLLM) render it for every request, exactly like GGUF's ``tokenizer.chat_template``, so each
template gets the same static review (:mod:`._jinja`: parsed, never rendered) and the same rules,
under ``tokenizer.template.*``. Recognised by content: a JSON object with a top-level
``chat_template`` key, whatever the file is called.

    >>> is_tokenizer_config(b'{"chat_template": "{{ messages }}"}')
    True
    >>> is_tokenizer_config(b'{"model_type": "llama"}')
    False
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import BinaryIO, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import finding
from bastion.scan.interface import Format, Member, ScanLimits, Source

# The reviewers (configs: PyYAML; gguf: Jinja) are imported when a config is reviewed, not here:
# the sniffer's probe below runs on every JSON object in a directory.

__all__ = [
    "MAX_CONFIG",
    "ChatTemplateScanner",
    "TokenizerConfigScanner",
    "is_chat_template",
    "is_tokenizer_config",
    "probe_tokenizer_config",
]

MAX_CONFIG: Final = 16 * 1024 * 1024
"""Largest config parsed (also bounded by ``ScanLimits.max_member_bytes``). Parsed JSON takes
several times its size in memory, and real tokenizer configs are well under a megabyte."""
_KEY: Final = "chat_template"


def _key_pattern(key: str) -> re.Pattern[bytes]:
    """``"key":`` with any of its characters written as a ``\\uXXXX`` escape (json.loads
    decodes both spellings, so both must be found)."""

    def one(c: str) -> bytes:
        hexdigits = "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d
                            for d in f"{ord(c):04x}")
        return b"(?:" + re.escape(c.encode()) + rb"|\\u" + hexdigits.encode() + b")"

    return re.compile(b'"' + b"".join(one(c) for c in key) + rb'"\s*:')


_KEY_BYTES: Final = _key_pattern(_KEY)
_PLAIN_KEY: Final = b'"' + _KEY.encode() + b'"'


def _spells_key(data: bytes) -> bool:
    """Whether ``data`` holds ``"chat_template":`` in any spelling :data:`_KEY_BYTES` finds.

    Text without a backslash has no escapes, so it can only spell the key plainly: looking
    for one backslash (``memchr``) and then for the plain key scans the megabyte of a
    ``tokenizer.json`` about three times faster than the pattern does.
    """
    if b"\\" not in data and _PLAIN_KEY not in data:
        return False
    return _KEY_BYTES.search(data) is not None


_CHUNK: Final = 1 << 20
_BOM: Final = b"\xef\xbb\xbf"


def _opens_object(head: bytes) -> bool:
    return head.removeprefix(_BOM).lstrip(b" \t\r\n").startswith(b"{")


def _parse(raw: bytes) -> object:
    """The JSON value of ``raw`` (UTF-8, a BOM allowed as Python's reader allows it)."""
    return json.loads(raw.removeprefix(_BOM).decode("utf-8"))


def is_tokenizer_config(data: bytes) -> bool:
    """True when ``data`` is a whole JSON object with a top-level ``chat_template`` key."""
    if not _opens_object(data):
        return False
    try:
        value = _parse(data)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(value, dict) and _KEY in value


def probe_tokenizer_config(head: bytes, stream: BinaryIO, size: int) -> bool:
    """The sniffer's test: a JSON object that holds ``chat_template``.

    Up to :data:`MAX_CONFIG` the file is parsed (an escaped key counts, as it does for
    transformers); a larger object that spells the key counts too, so its scanner reports the
    limit rather than the file passing as unknown.
    """
    if not _opens_object(head):
        return False
    if size <= len(head):  # the key's spelling first: most JSON objects go unparsed
        return _spells_key(head) and is_tokenizer_config(head)
    stream.seek(0)
    if size <= MAX_CONFIG:
        data = stream.read(MAX_CONFIG)
        return _spells_key(data) and is_tokenizer_config(data)
    tail = b""
    while chunk := stream.read(_CHUNK):
        if _spells_key(tail + chunk):
            return True
        tail = chunk[-64:]
    return False


class TokenizerConfigScanner:
    """Reviews every chat template of a tokenizer or processor config; runs none of them."""

    formats: frozenset[Format] = frozenset({Format.TOKENIZER_CONFIG})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 1. read within the size limit; 2. parse the JSON; 3. find each template
        (a string, a list of named templates, or a name → template object); 4. review each."""
        limit = min(MAX_CONFIG, limits.max_member_bytes)
        # 1.
        if source.size > limit:
            yield finding(
                source, "tokenizer.limit", Severity.HIGH,
                "Tokenizer config exceeds the scanner's limits",
                detail=f"It holds {source.size} bytes, more than the {limit} read; its chat "
                "templates were not checked.", remediation="Review the file by hand.",
            )
            return
        with source.open() as stream:
            raw = stream.read(limit)
        # 2.
        try:
            config = _parse(raw)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            yield _invalid(source, f"it is not valid JSON ({exc})")
            return
        if not isinstance(config, dict):
            yield _invalid(source, "it is not a JSON object")
            return
        if "auto_map" in config:  # Python that runs on load (configs reads only this key)
            from bastion.scan.formats.configs import remote_code_findings

            yield from remote_code_findings(source, config)
        # 3. and 4.
        templates, problem = _templates(config.get(_KEY))
        if problem:
            yield _invalid(source, problem)
        for key, text in templates:
            yield from _review(source, key, text, "Tokenizer config")


def _review(source: Source, key: str, text: str, label: str) -> Iterator[Finding]:
    """The chat template review GGUF's templates get, under ``tokenizer.template.*``."""
    from bastion.scan.formats.gguf import template_findings  # Jinja: only when there is one

    yield from template_findings(source, key, text, 0, prefix="tokenizer", label=label)


def _templates(value: object) -> tuple[list[tuple[str, str]], str]:
    """(key, template) pairs of a ``chat_template`` value, and what was not a template."""
    if value is None:
        return [], ""
    if isinstance(value, str):
        return [(_KEY, value)], ""
    pairs: list[tuple[object, object]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [(item.get("name"), item.get("template")) if isinstance(item, dict)
                 else (None, item) for item in value]
    else:
        return [], f"chat_template is a {type(value).__name__}, not a template"
    found = [(f"{_KEY}.{name}", text) for name, text in pairs
             if isinstance(name, str) and isinstance(text, str)]
    bad = len(pairs) - len(found)
    return found, f"{bad} chat_template entries are not named templates" if bad else ""


def _invalid(source: Source, why: str) -> Finding:
    return finding(
        source, "tokenizer.config.invalid", Severity.HIGH, "Tokenizer config cannot be read",
        detail=f"The file was recognised as a tokenizer config, but {why}: its chat templates "
        "were not all checked, and transformers may read it differently.",
        remediation="Obtain the file again from its publisher.",
    )


_TEMPLATE_MARKERS: Final = (b"messages", b"add_generation_prompt", b"bos_token", b"eos_token")


def is_chat_template(head: bytes) -> bool:
    """A standalone Jinja chat template (``chat_template.jinja``, as newer transformers save
    it): UTF-8 text with Jinja tags that names what chat templates render from."""
    if b"\x00" in head or not (b"{%" in head or b"{{" in head):
        return False
    if not any(marker in head for marker in _TEMPLATE_MARKERS):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the head
        return exc.start >= len(head) - 3
    return True


class ChatTemplateScanner:
    """Reviews a standalone chat template exactly as one inside a tokenizer config."""

    formats: frozenset[Format] = frozenset({Format.CHAT_TEMPLATE})

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 1. read within the size limit; 2. decode; 3. review the template."""
        limit = min(MAX_CONFIG, limits.max_member_bytes)
        if source.size > limit:  # 1.
            yield finding(
                source, "tokenizer.limit", Severity.HIGH, "Chat template exceeds the limits",
                detail=f"It holds {source.size} bytes, more than the {limit} read; it was not "
                "checked.", remediation="Review the file by hand.",
            )
            return
        with source.open() as stream:
            raw = stream.read(limit)
        try:  # 2.
            text = raw.removeprefix(_BOM).decode("utf-8")
        except UnicodeDecodeError as exc:
            yield _invalid(source, f"it is not UTF-8 text ({exc.reason})")
            return
        yield from _review(source, "chat_template", text, "Standalone")  # 3.
