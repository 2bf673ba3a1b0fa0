"""Static review of a Jinja chat template: parse it, never render it, and find reaches for Python.

Chat templates ship inside GGUF files and tokenizer configs and are rendered by the inference
server. Rendered outside a sandbox (or through a sandbox escape), ``{{ cycler.__init__.__globals__
.os.popen('id').read() }}`` runs commands (CVE-2024-34359, "Llama Drama"). Every such payload has
to name a Python internal somewhere: as an attribute, a subscript, an ``attr()`` filter argument or
an ``attribute=`` keyword of ``map``/``selectattr``/``sort``. So the review walks the syntax tree,
folds constant string expressions (``'__cla' ~ 'ss__'``, ``'%c'`` escapes are already decoded by
the lexer, ``['__', 'class', '__']|join``) and checks every name used to reach into an object;
names it cannot fold are themselves suspicious, since honest templates do not assemble them.

    >>> [i.rule for i in review("{{ messages[0]['content'] | trim }}")]
    []
    >>> [i.rule for i in review("{{ lipsum.__globals__['os'].popen('id').read() }}")]
    ['template.internals', 'template.internals']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from jinja2 import Environment, nodes
from jinja2.exceptions import TemplateSyntaxError

__all__ = ["TemplateIssue", "review"]

# Names that lead from template data to Python's machinery. Names starting with "_" (every dunder)
# are refused by Jinja's own sandbox; the others are the next hops of known escape chains
# (``os.popen``, ``sys.modules``, a frame's ``f_globals``, a type's ``mro``). Subscripts get the
# narrower set: ``roles['system']`` is an honest dictionary lookup, ``.system(...)`` is not.
_DEEP: Final = frozenset({
    "mro", "func_globals", "func_code", "f_globals", "f_locals", "f_builtins", "f_back",
    "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "tb_frame", "tb_next",
    "builtins", "popen", "subprocess", "import_module", "load_module",
})
_ATTRIBUTES: Final = _DEEP | frozenset({
    "os", "sys", "system", "spawn", "fork", "exec", "execv", "eval", "compile", "globals",
    "locals", "getattr", "setattr", "modules", "environ", "open",
})
# Filters and tests whose argument is an attribute name.
_ATTRIBUTE_FILTERS: Final = frozenset({"attr"})
_ATTRIBUTE_ARG_FILTERS: Final = frozenset({"selectattr", "rejectattr"})
_UNARY: Final[dict[str, Callable[[str], str]]] = {
    "lower": str.lower, "upper": str.upper, "trim": str.strip, "string": str,
    "reverse": lambda text: text[::-1],
}
# Folding is bounded so a template cannot make the reviewer build a huge string.
_MAX_FOLD: Final = 4096


@dataclass(frozen=True, slots=True)
class TemplateIssue:
    """One thing the review found."""

    rule: str
    """``template.internals``, ``template.dynamic-name``, ``template.loads`` or
    ``template.syntax``."""
    message: str
    """What was found, for people."""
    line: int
    """Line of the template it is on."""
    name: str = ""
    """The attribute or key involved, when known."""


def _is_internal(name: str, how: str) -> bool:
    return name.startswith("_") or name in (_DEEP if how == "subscript" else _ATTRIBUTES)


def _fold(node: nodes.Node) -> str | None:
    """The string a constant expression evaluates to, or ``None`` when it is not constant."""
    result: str | None = None
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        result = node.value
    elif isinstance(node, nodes.Concat):
        parts = [_fold(n) for n in node.nodes]
        result = None if None in parts else "".join(p for p in parts if p is not None)
    elif isinstance(node, nodes.Add):
        left, right = _fold(node.left), _fold(node.right)
        result = None if left is None or right is None else left + right
    elif isinstance(node, nodes.Mul):
        text = _fold(node.left)
        count = node.right.value if isinstance(node.right, nodes.Const) else None
        if text is not None and type(count) is int and 0 <= count * len(text) <= _MAX_FOLD:
            result = text * count
    elif isinstance(node, nodes.Filter) and node.node is not None:
        result = _fold_filter(node, node.node)
    if result is not None and len(result) > _MAX_FOLD:
        return None
    return result


def _fold_filter(node: nodes.Filter, operand: nodes.Node) -> str | None:
    if node.name == "join" and isinstance(operand, nodes.List | nodes.Tuple):
        items = [_fold(n) for n in operand.items]
        sep = _fold(node.args[0]) if node.args else ""
        if None in items or sep is None:
            return None
        return sep.join(i for i in items if i is not None)
    base = _fold(operand)
    if base is None:
        return None
    if not node.args and node.name in _UNARY:
        return _UNARY[node.name](base)
    if node.name == "replace" and len(node.args) == 2:
        old, new = _fold(node.args[0]), _fold(node.args[1])
        if old is not None and new is not None and old:
            replaced = base.replace(old, new)
            return replaced if len(replaced) <= _MAX_FOLD else None
    return None


def _builds_string(expr: nodes.Node) -> bool:
    """True when ``expr`` concatenates, formats, filters, calls or holds a string literal."""
    builders = (nodes.Concat, nodes.Filter, nodes.Call, nodes.Mod, nodes.CondExpr)
    if isinstance(expr, builders):
        return True
    return any(isinstance(n, builders) or (isinstance(n, nodes.Const) and isinstance(n.value, str))
               for n in expr.find_all(nodes.Expr))


def _names_used(node: nodes.Node) -> Iterator[tuple[nodes.Node | str, str]]:
    """Each name this node uses to reach into an object: (expression or literal, how)."""
    if isinstance(node, nodes.Getattr):
        yield node.attr, "attribute"
    elif isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
        yield node.arg, "subscript"
    elif isinstance(node, nodes.Filter | nodes.Test):
        if node.name in _ATTRIBUTE_FILTERS and node.args:
            yield node.args[0], f"{node.name}() filter"
        if node.name in _ATTRIBUTE_ARG_FILTERS and node.args:
            yield node.args[0], f"{node.name}() filter"
        for kw in node.kwargs:
            if kw.key == "attribute":
                yield kw.value, f"{node.name}(attribute=)"


def review(source: str) -> list[TemplateIssue]:
    """Parse ``source`` as Jinja (never render it) and list the constructs that reach Python."""
    try:
        tree = Environment(autoescape=False).parse(source)  # noqa: S701 - parsed, not rendered
    except TemplateSyntaxError as exc:
        return [TemplateIssue("template.syntax", f"template does not parse: {exc.message}",
                              exc.lineno)]
    except (RecursionError, MemoryError):
        return [TemplateIssue("template.syntax", "template is too deeply nested to parse", 0)]
    try:
        return _walk(tree)
    except RecursionError:
        return [TemplateIssue("template.syntax", "template is too deeply nested to review", 0)]


def _walk(tree: nodes.Template) -> list[TemplateIssue]:
    issues: list[TemplateIssue] = []
    for node in tree.find_all(nodes.Node):
        line = getattr(node, "lineno", 0) or 0
        if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            issues.append(TemplateIssue(
                "template.loads", f"{type(node).__name__.lower()} loads another template", line))
            continue
        for expr, how in _names_used(node):
            name = expr if isinstance(expr, str) else _fold(expr)
            if name is None:
                if isinstance(expr, str) or not _builds_string(expr):
                    continue  # a variable, a number or arithmetic: how templates index lists
                issues.append(TemplateIssue(
                    "template.dynamic-name", f"{how} name is assembled at render time", line))
            elif _is_internal(name, how):
                issues.append(TemplateIssue(
                    "template.internals", f"{how} {name!r} reaches Python internals", line, name))
    # Strings that spell a dunder but are kept for later ({% set a = '__glo' ~ 'bals__' %}).
    named = {i.name for i in issues}
    for expr in tree.find_all((nodes.Const, nodes.Concat, nodes.Add, nodes.Mul, nodes.Filter)):
        value = _fold(expr)
        if value and value[:2] == value[-2:] == "__" and value[2:-2].isidentifier() \
                and value not in named:
            named.add(value)
            issues.append(TemplateIssue(
                "template.internals", f"string {value!r} names a Python internal",
                expr.lineno or 0, value))
    return issues
