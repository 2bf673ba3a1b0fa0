"""Reading cards people write: YAML, JSON, or Markdown with Hugging Face front matter.

Cards are untrusted text: YAML is read with the safe loader and no aliases ("billion laughs"),
sizes are capped before parsing, and every error names the source and the field::

    >>> card = load_card_text("kind: model\\ndescription: digits classifier\\n", source="x.yaml")
    >>> card.kind, card.description
    ('model', 'digits classifier')
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from bastion.catalog.cards.model import (
    MAX_CARD_BYTES,
    AnyCard,
    CardError,
    CardKind,
    card_from_dict,
)

__all__ = [
    "HF_KEYS",
    "card_from_hf",
    "dump_yaml",
    "load_card",
    "load_card_text",
    "safe_yaml",
    "split_front_matter",
]

# Front-matter keys Hugging Face tooling reads, filled from card fields of the same meaning.
HF_KEYS: Final = (
    ("license", "license"),
    ("tags", "tags"),
    ("task", "pipeline_tag"),
    ("framework", "library_name"),
)
_HF_DATASET_KEYS: Final = frozenset(
    {
        "task_categories",
        "size_categories",
        "pretty_name",
        "annotations_creators",
        "source_datasets",
        "configs",
        "dataset_info",
    }
)
_REF: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}@[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: no "billion laughs" expansion in a card."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed in a card", event.start_mark
            )
        return super().compose_node(parent, index)


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared values in full, so Bastion's own YAML reads back under the no-alias rule."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_yaml(data: Any) -> str:
    """YAML text for a card (block style, keys in order, no anchors)."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)


def safe_yaml(text: str, *, source: str) -> Any:
    """Parse YAML with the safe loader and no aliases; errors name the source and line."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise CardError(
            f"{source}: not valid YAML{where}: {problem}", hint="fix the YAML syntax"
        ) from None


_FRONT_MATTER: Final = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)^---[ \t]*\r?$\n?", re.S | re.M)


def split_front_matter(text: str) -> tuple[str, str] | None:
    """Split a Hugging Face style card (``---\\nYAML\\n---\\nmarkdown``) into (YAML, markdown)."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return None
    return match.group(1), text[match.end() :]


def load_card_text(
    text: str, *, source: str, kind: CardKind | None = None, trusted: bool = False
) -> AnyCard:
    """Read a card from YAML, JSON, or Markdown with Hugging Face front matter."""
    if len(text.encode("utf-8")) > MAX_CARD_BYTES:
        raise CardError(
            f"{source}: a card may hold at most {MAX_CARD_BYTES} bytes",
            hint="keep cards to metadata; attach long documents as asset files",
        )
    parts = split_front_matter(text)
    if parts is not None:
        return card_from_hf(parts[0], parts[1], source=source, kind=kind, trusted=trusted)
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise CardError(f"{source}: not valid JSON: {exc}", hint="fix the JSON") from None
    else:
        data = safe_yaml(text, source=source)
    return card_from_dict(data, source=source, kind=kind, trusted=trusted)


def load_card(path: Path, *, kind: CardKind | None = None) -> AnyCard:
    """Read a card file a person wrote (never trusted with computed fields)."""
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise CardError(
                f"{path}: a card may hold at most {MAX_CARD_BYTES} bytes, this one has {size}",
                hint="keep cards to metadata; attach long documents as asset files",
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CardError(f"card file {path} does not exist", hint="check the path") from None
    except UnicodeDecodeError:
        raise CardError(f"{path}: a card must be UTF-8 text") from None
    except OSError as exc:
        raise CardError(f"cannot read the card {path}: {exc.strerror}") from None
    return load_card_text(text, source=str(path), kind=kind)


def card_from_hf(
    front_matter: str,
    body: str,
    *,
    source: str,
    kind: CardKind | None = None,
    trusted: bool = False,
) -> AnyCard:
    """Read a Hugging Face card. A ``bastion`` key holds a full card; otherwise the standard
    HF keys are mapped and the Markdown body's first section becomes the description."""
    front = safe_yaml(front_matter, source=f"{source} (front matter)") or {}
    if not isinstance(front, Mapping):
        raise CardError(f"{source}: the front matter must be a mapping of keys")
    if isinstance(front.get("bastion"), Mapping):
        return card_from_dict(front["bastion"], source=source, kind=kind, trusted=trusted)
    guessed = CardKind.DATASET if _HF_DATASET_KEYS & set(front) else CardKind.MODEL
    data: dict[str, Any] = {"kind": (kind or guessed).value}
    for ours, hf in HF_KEYS:
        if hf in front and not (ours in ("task", "framework") and data["kind"] == "dataset"):
            data[ours] = front[hf]
    if isinstance(data.get("tags"), str):
        data["tags"] = [data["tags"]]
    if isinstance(data.get("license"), list):
        data["license"] = ", ".join(map(str, data["license"]))
    if data["kind"] == "dataset" and front.get("pretty_name"):
        data["name"] = front["pretty_name"]
    refs = [d for d in _as_list(front.get("datasets")) if _REF.match(str(d))]
    if refs and data["kind"] == "model":
        data["training_datasets"] = refs
    base = front.get("base_model")
    if isinstance(base, str) and _REF.match(base) and data["kind"] == "model":
        data["parent_model"] = base
    description = _first_section(body)
    if description:
        data["description"] = description
    return card_from_dict(data, source=source, kind=kind)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _first_section(body: str) -> str:
    """The Markdown up to the first ``##`` heading, without the leading ``#`` title."""
    text = re.split(r"^##\s", body, maxsplit=1, flags=re.M)[0]
    text = re.sub(r"\A\s*#\s[^\n]*\n", "", text)
    return text.strip()


