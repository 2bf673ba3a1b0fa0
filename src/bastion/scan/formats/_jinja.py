"""Static review of a Jinja chat template: parse it, never render it, and find reaches for Python.

Chat templates ship inside GGUF files and tokenizer configs and are rendered by the inference
server. Rendered outside a sandbox (or through a sandbox escape), ``{{ cycler.__init__.__globals__
.os.popen('id').read() }}`` runs commands (CVE-2024-34359, "Llama Drama"). Every such payload has
to name a Python internal somewhere: as an attribute, a subscript, an ``attr()`` filter argument or
an ``attribute=`` keyword of ``map``/``selectattr``/``sort``. So the review walks the syntax tree
and checks every name used to reach into an object.

Names are followed through data flow, not only read where they are written. For the whole template
the review works out what each variable (``{% set %}``, ``{% for %}`` targets, macro and ``{% call
%}`` parameters) and each ``namespace()`` attribute may hold, following strings through ``~``,
``+``, ``%``, slicing and the string filters (``join``, ``format``, ``replace``, ``lower`` …), so
``{% set a = '__glo' ~ 'bals__' %}{{ lipsum|attr(a) }}`` is judged as ``__globals__``. A name made
from the template's own strings in a way the review does not follow is itself suspicious, since
honest templates do not assemble names; a name taken from the server's data (``d[key]`` in a loop
over ``messages``) is how honest templates index.

    >>> [i.rule for i in review("{{ messages[0]['content'] | trim }}")]
    []
    >>> [i.rule for i in review("{{ lipsum.__globals__['os'].popen('id').read() }}")]
    ['template.internals', 'template.internals']
    >>> [i.name for i in review("{% for n in ['__cla'] %}{{ ''|attr(n ~ 'ss__') }}{% endfor %}")]
    ['__class__']
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

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
_ATTRIBUTE_ARGS: Final = {
    "attr": 0, "selectattr": 0, "rejectattr": 0, "groupby": 0, "sum": 0, "unique": 1, "min": 1,
    "max": 1, "sort": 2,
}
"""Filters with an attribute-name parameter, and its position among the filter's arguments. All
but ``attr`` take a dotted path (``'a.__class__'``), as ``attribute=`` does."""
_INDEXING: Final = ("attribute", "subscript")
"""Reaches where a name from the server's data is how honest templates index (``d[key]``)."""
_KEEPS_DATA: Final = frozenset({
    "abs", "capitalize", "count", "dictsort", "e", "escape", "first", "forceescape",
    "items", "last", "length", "list", "lower", "max", "min", "random", "reject", "rejectattr",
    "reverse", "round", "safe", "select", "selectattr", "sort", "string", "striptags", "tojson",
    "trim", "unique", "upper", "urlencode", "wordcount",
})
"""Filters whose result is made of their value alone, whatever their arguments, so the server's
data stays data (``messages|selectattr('role', 'equalto', 'user')``). Not ``join``, ``replace``,
``default``, ``batch``, ``groupby``, ``sum`` …: their arguments can end up in the result."""
_UNARY: Final[dict[str, Callable[[str], str]]] = {
    "lower": str.lower, "upper": str.upper, "string": str, "capitalize": str.capitalize,
}
_PLAIN_PRINTF: Final = re.compile(r"(?:[^%]|%[%s])*", re.DOTALL)

# Following values is bounded so a template cannot make the reviewer build a huge string or loop.
_MAX_FOLD: Final = 4096  # longest string followed
_MAX_VALUES: Final = 64  # most values one expression is followed with
_MAX_ITEMS: Final = 256  # longest list or dict followed item by item
_MAX_DEPTH: Final = 4  # deepest nesting of lists and dicts followed
_WIDEN_AFTER: Final = 8  # rounds before a value still growing is frozen, plus "assembled"
_MAX_ROUNDS: Final = 32  # rounds before every value is given up on, as assembled
_MAX_WORK: Final = 500_000  # evaluations in all rounds together: fewer rounds for huge templates


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


# -- What an expression may evaluate to -------------------------------------------------------

class _Unknown(Enum):
    """A value whose strings the review does not know."""

    DATA = "data"
    """The server's render context (``messages``, ``tools``, numbers, an undefined name) or what is
    read out of it: honest templates index with it."""
    ASSEMBLED = "assembled"
    """Made at render time from the template's own values in a way the review does not follow."""


@dataclass(frozen=True, slots=True)
class _Seq:
    """A list or tuple the template built, with what each item may be."""

    items: tuple[_Value, ...]
    depth: int


@dataclass(frozen=True, slots=True)
class _Map:
    """A dict the template built (``{'a': …}``, ``dict(a=…)``): its keys are known strings."""

    keys: tuple[str, ...]
    values: tuple[_Value, ...]
    depth: int


@dataclass(frozen=True, slots=True)
class _Ref:
    """An object this template made: a ``namespace()``, or a macro or ``{% call %}`` body."""

    kind: Literal["namespace", "macro"]
    site: int
    """``id()`` of the node that makes it."""


_Atom = str | int | _Seq | _Map | _Ref | _Unknown
_Value = frozenset[_Atom]
"""Every value an expression may have: a set, so a loop variable is each item of its list."""
_Key = str | tuple[int, str]
"""A variable's name, or (namespace site, attribute)."""
_NOTHING: Final[_Value] = frozenset()  # the code never runs, or rendering fails there
_DATA: Final[_Value] = frozenset({_Unknown.DATA})
_ASSEMBLED: Final[_Value] = frozenset({_Unknown.ASSEMBLED})


def _join(*values: _Value) -> _Value:
    joined: _Value = frozenset().union(*values)
    return _ASSEMBLED if len(joined) > _MAX_VALUES else joined


def _string(text: str) -> _Value:
    return frozenset({text}) if len(text) <= _MAX_FOLD else _ASSEMBLED


def _const(value: object) -> _Value:
    if isinstance(value, str):
        return _string(value)
    return frozenset({value}) if type(value) is int else _DATA


def _text(atom: _Atom) -> str | None:
    """What ``~`` and ``|string`` make of ``atom``, when the review knows."""
    if isinstance(atom, str):
        return atom
    return str(atom) if type(atom) is int else None


def _is_data(value: _Value) -> bool:
    return all(atom is _Unknown.DATA or type(atom) is int for atom in value)


def _derive(*atoms: _Atom) -> _Value:
    """An operation the review does not follow: the server's data in gives data out (``a - 1``),
    anything the template made gives something assembled."""
    return _DATA if _is_data(frozenset(atoms)) else _ASSEMBLED


def _derive_all(values: Sequence[_Value]) -> _Value:
    return _DATA if all(_is_data(v) for v in values) else _ASSEMBLED


def _combine(values: Sequence[_Value], rule: Callable[..., _Value]) -> _Value:
    """``rule`` applied to every choice of one atom from each of ``values``; past _MAX_VALUES
    choices, assembled."""
    if math.prod(len(v) for v in values) > _MAX_VALUES:
        return _ASSEMBLED
    return _join(*(rule(*choice) for choice in itertools.product(*values)))


def _depth(values: Sequence[_Value]) -> int:
    return 1 + max((a.depth for v in values for a in v if isinstance(a, _Seq | _Map)), default=0)


def _seq(items: Sequence[_Value]) -> _Value:
    depth = _depth(items)
    if len(items) > _MAX_ITEMS or depth > _MAX_DEPTH:
        return _ASSEMBLED
    return frozenset({_Seq(tuple(items), depth)})


def _map(entries: dict[str, _Value]) -> _Value:
    depth = _depth(list(entries.values()))
    if len(entries) > _MAX_ITEMS or depth > _MAX_DEPTH:
        return _ASSEMBLED
    return frozenset({_Map(tuple(entries), tuple(entries.values()), depth)})


def _sequence(atom: _Atom) -> tuple[_Value, ...] | None:
    """The items of a string, list or dict (its keys) in order, as iterating it gives them."""
    if isinstance(atom, str):
        return tuple(frozenset({c}) for c in atom)
    if isinstance(atom, _Seq):
        return atom.items
    if isinstance(atom, _Map):
        return tuple(frozenset({k}) for k in atom.keys)
    return None


def _elements(value: _Value) -> _Value:
    """Every value a loop over ``value`` gives its variable."""
    return _join(*(_unpack(atom, None) for atom in value))


def _unpack(atom: _Atom, position: tuple[int, int] | None) -> _Value:
    """All items of ``atom``, or the item at (index, count) when unpacked into that many names;
    nothing where iterating fails."""
    if isinstance(atom, _Unknown):
        return frozenset({atom})
    items = _sequence(atom)
    if items is None:
        return _NOTHING
    if position is None:
        return _join(*items)
    index, count = position
    return items[index] if len(items) == count else _NOTHING


def _index(value: _Value) -> int | None:
    """The one integer ``value`` is, if it is one."""
    (atom,) = value if len(value) == 1 else (None,)
    return atom if type(atom) is int else None


def _joined(atoms: Sequence[_Atom], separator: str = "") -> _Value:
    texts = [t for a in atoms if (t := _text(a)) is not None]
    if len(texts) < len(atoms) or sum(map(len, texts)) + len(separator) * len(texts) > _MAX_FOLD:
        return _ASSEMBLED
    return frozenset({separator.join(texts)})


def _concat(parts: Sequence[_Value]) -> _Value:
    """``a ~ b`` and a block's output: known only when every part is known text."""
    return _combine(parts, lambda *atoms: _joined(atoms))


# -- Operators and filters on one choice of values --------------------------------------------

def _add(left: _Atom, right: _Atom) -> _Value:
    if isinstance(left, str) and isinstance(right, str):
        return _string(left + right)
    if isinstance(left, _Seq) and isinstance(right, _Seq):
        return _seq(left.items + right.items)
    if type(left) is int and type(right) is int:
        return frozenset({left + right})
    return _derive(left, right)


def _mul(left: _Atom, right: _Atom) -> _Value:
    text, count = (left, right) if isinstance(left, str) else (right, left)
    if isinstance(text, str) and type(count) is int:
        return _string(text * count) if len(text) * count <= _MAX_FOLD else _ASSEMBLED
    return _derive(left, right)


def _neg(atom: _Atom) -> _Value:
    return frozenset({-atom}) if type(atom) is int else _derive(atom)


def _printf(template: _Atom, *args: _Atom) -> _Value:
    """``'%s%s' % (a, b)`` and ``|format``: plain ``%s`` only, with known text."""
    texts = [t for a in args if (t := _text(a)) is not None]
    if not isinstance(template, str) or len(texts) < len(args) \
            or not _PLAIN_PRINTF.fullmatch(template) \
            or len(template) + sum(map(len, texts)) > _MAX_FOLD:
        return _derive(template, *args)
    try:
        return _string(template % tuple(texts))
    except TypeError:  # the wrong number of arguments: rendering fails
        return _NOTHING


def _fold_join(value: _Atom, separator: _Atom = "") -> _Value:
    items, text = _sequence(value), _text(separator)
    if items is None:
        return _NOTHING
    if text is None:
        return _ASSEMBLED
    return _combine(items, lambda *atoms: _joined(atoms, text))


def _fold_replace(value: _Atom, old: _Atom, new: _Atom) -> _Value:
    if not (isinstance(value, str) and isinstance(old, str) and isinstance(new, str)):
        return _ASSEMBLED
    # Measured before it is built: ''.replace('', ...) and long replacements stay bounded.
    if len(value) + value.count(old) * (len(new) - len(old)) > _MAX_FOLD:
        return _ASSEMBLED
    return frozenset({value.replace(old, new)})


def _fold_trim(value: _Atom, chars: _Atom | None = None) -> _Value:
    text = _text(value)
    if text is None or not (chars is None or isinstance(chars, str)):
        return _ASSEMBLED
    return frozenset({text.strip(chars)})


def _fold_reverse(value: _Atom) -> _Value:
    if isinstance(value, str):
        return frozenset({value[::-1]})
    return _seq(value.items[::-1]) if isinstance(value, _Seq) else _ASSEMBLED


def _fold_pick(value: _Atom, index: int) -> _Value:
    items = _sequence(value)
    if items is None:
        return _NOTHING
    return items[index] if items else _DATA  # first of nothing is undefined


def _fold_list(value: _Atom) -> _Value:
    items = _sequence(value)
    return _NOTHING if items is None else _seq(items)


def _fold_items(value: _Atom) -> _Value:
    if not isinstance(value, _Map):
        return _NOTHING  # items() of anything but a mapping fails
    return _seq([_seq([frozenset({k}), v]) for k, v in zip(value.keys, value.values, strict=True)])


def _unary(function: Callable[[str], str]) -> Callable[[_Atom], _Value]:
    def fold(value: _Atom) -> _Value:
        text = _text(value)
        return _ASSEMBLED if text is None else frozenset({function(text)})
    return fold


_FOLDS: Final[dict[str, Callable[..., _Value]]] = {
    "join": _fold_join, "format": _printf, "replace": _fold_replace, "trim": _fold_trim,
    "reverse": _fold_reverse, "first": lambda v: _fold_pick(v, 0),
    "last": lambda v: _fold_pick(v, -1), "list": _fold_list, "items": _fold_items,
    **{name: _unary(function) for name, function in _UNARY.items()},
}
"""Filters the review follows on known values (given positional arguments only)."""
_OPERATORS: Final[dict[type[nodes.Node], Callable[..., _Value]]] = {
    nodes.Add: _add, nodes.Mul: _mul, nodes.Neg: _neg,
}


# -- Walking the tree without recursion (a template may nest expressions thousands deep) -------

def _nodes_under(root: nodes.Node) -> Iterator[nodes.Node]:
    """``root`` and every node inside it."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.iter_child_nodes())


def _schedule(tree: nodes.Template) -> list[nodes.Node]:
    """Every statement and expression, in the order the review evaluates them: an expression
    after everything inside it, a statement after its own expressions and before the statements
    in its body, so each step finds what it needs already evaluated."""
    order: list[nodes.Node] = []
    stack: list[tuple[nodes.Node, bool]] = [(tree, False)]
    while stack:
        node, ready = stack.pop()
        if ready:
            order.append(node)
            continue
        children = list(node.iter_child_nodes())
        stack.extend((c, False) for c in reversed(children) if isinstance(c, nodes.Stmt))
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(children) if not isinstance(c, nodes.Stmt))
    return [n for n in order if isinstance(n, nodes.Expr | nodes.Stmt)]


# -- Which names may still be the server's when read -------------------------------------------

def _target_names(target: nodes.Node) -> frozenset[str]:
    return frozenset(n.name for n in _nodes_under(target) if isinstance(n, nodes.Name))


def _context_reads(tree: nodes.Template) -> set[int]:
    """``id()`` of each name read where the template may not have bound it yet, so that it may
    hold the server's context (``{% set messages = messages[1:] %}``) or be undefined."""
    reads = _Reads()
    reads.block(tree.body)
    return reads.found


class _Reads:
    """Scans statements in order, knowing which names are surely bound at each point."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.found: set[int] = set()

    def block(self, body: Sequence[nodes.Node], extra: Iterable[str] = (),
              exprs: Sequence[nodes.Node | None] = ()) -> None:
        """Scan ``exprs`` then ``body`` with ``extra`` bound; what they bind is forgotten after."""
        added = list(set(extra) - self.known)
        self.known.update(added)
        self.reads(exprs)
        for statement in body:
            for name in self.statement(statement) - self.known:
                self.known.add(name)
                added.append(name)
        self.known.difference_update(added)

    def reads(self, exprs: Sequence[nodes.Node | None]) -> None:
        for expr in exprs:
            for name in () if expr is None else _nodes_under(expr):
                if isinstance(name, nodes.Name) and name.ctx == "load" \
                        and name.name not in self.known:
                    self.found.add(id(name))

    def statement(self, node: nodes.Node) -> frozenset[str]:
        """Scan one statement; return the names it surely binds for what follows. Loops, macros
        and ``with`` bind their names inside only; ``set`` under an ``if`` binds nothing for
        sure."""
        if isinstance(node, nodes.Assign):
            self.reads([node.node])
            return _target_names(node.target)
        if isinstance(node, nodes.AssignBlock):
            self.block(node.body, exprs=[node.filter])
            return _target_names(node.target)
        if isinstance(node, nodes.For):
            self.reads([node.iter])
            self.block(node.body, _target_names(node.target) | {"loop"}, [node.test])
            self.block(node.else_)
        elif isinstance(node, nodes.Macro | nodes.CallBlock):
            self.reads([*node.defaults, node.call if isinstance(node, nodes.CallBlock) else None])
            own = frozenset({node.name} if isinstance(node, nodes.Macro) else ())
            params = {p.name for p in node.args} | {"caller", "varargs", "kwargs"}
            self.block(node.body, own | params)
            return own
        elif isinstance(node, nodes.With):
            self.reads(node.values)
            self.block(node.body, {n for t in node.targets for n in _target_names(t)})
        else:  # if, output, filter blocks, blocks, scopes: each branch starts from what is known
            for _, field in node.iter_fields():
                children = field if isinstance(field, list) else [field]
                self.block([c for c in children if isinstance(c, nodes.Stmt)])
                self.reads([c for c in children if isinstance(c, nodes.Expr)])
        return frozenset()


# -- The data flow over the whole template ----------------------------------------------------

class _Flow:
    """What each variable, namespace attribute and macro parameter may hold.

    Flow-insensitive, which is what makes it sound simply: every binding anywhere adds to a name's
    possible values (scopes merged), repeated until nothing changes, so a value that reaches a name
    by any path, in any order of execution, is among them. Only whether a read may still see the
    server's context is decided in order (:func:`_context_reads`).
    """

    def __init__(self, tree: nodes.Template) -> None:
        self.schedule = _schedule(tree)
        self.context_reads = _context_reads(tree)
        names = [n for n in self.schedule if isinstance(n, nodes.Name)]
        calls = [n for n in self.schedule if isinstance(n, nodes.Call)]
        self.owners: dict[int, nodes.Macro | nodes.CallBlock] = {
            id(n): n for n in self.schedule if isinstance(n, nodes.Macro | nodes.CallBlock)}
        self.bound = {n.name for n in names if n.ctx != "load"}
        self.bound |= {n.name for n in self.owners.values() if isinstance(n, nodes.Macro)}
        callees = {id(c.node) for c in calls}
        self.escaped = {n.name for n in names if n.ctx == "load" and id(n) not in callees}
        """Names read other than to call them: a macro by that name may be called unseen."""
        self.namespaces = {id(c): c for c in calls if self._is_global(c.node, "namespace")}
        self.facts: dict[_Key, _Value] = {}
        self.frozen: set[_Key] = set()
        self.changed: set[_Key] = set()
        self.memo: dict[int, _Value] = {}
        self.gave_up = False

    def solve(self) -> None:
        """Repeat until nothing more is learnt; values still growing are frozen, assembled."""
        rounds = min(_MAX_ROUNDS, max(2, _MAX_WORK // max(len(self.schedule), 1)))
        for round_ in range(rounds):
            self._round()
            if not self.changed:
                return
            if round_ >= _WIDEN_AFTER:
                for key in self.changed:
                    self.facts[key] = _join(self.facts[key], _ASSEMBLED)
                self.frozen |= self.changed
        self.gave_up = True
        self._round()

    def _round(self) -> None:
        self.changed, self.memo = set(), {}
        for node in self.schedule:
            if isinstance(node, nodes.Stmt):
                self._bind(node)
            else:
                self.value(node)

    def _learn(self, key: _Key, value: _Value) -> None:
        old = self.facts.get(key, _NOTHING)
        new = _join(old, value)
        if key not in self.frozen and new != old:
            self.facts[key] = new
            self.changed.add(key)

    def _fact(self, key: _Key) -> _Value:
        return _ASSEMBLED if self.gave_up else self.facts.get(key, _NOTHING)

    def _is_global(self, node: nodes.Node, name: str) -> bool:
        return isinstance(node, nodes.Name) and node.name == name and name not in self.bound

    # Statements: what they bind.

    def _bind(self, statement: nodes.Node) -> None:
        if isinstance(statement, nodes.Assign):
            self._assign(statement.target, self.value(statement.node))
        elif isinstance(statement, nodes.AssignBlock):
            text = self._output(statement.body)
            if statement.filter is not None:
                text = self._filter(statement.filter, text)
            self._assign(statement.target, text)
        elif isinstance(statement, nodes.For):
            items = _elements(self.value(statement.iter))
            # loop(...) of a recursive loop gives it values the review does not follow.
            self._assign(statement.target, _join(items, _ASSEMBLED) if statement.recursive
                         else items)
            self._learn("loop", _DATA)
        elif isinstance(statement, nodes.With):
            for target, value in zip(statement.targets, statement.values, strict=True):
                self._assign(target, self.value(value))
        elif isinstance(statement, nodes.Macro | nodes.CallBlock):
            self._define(statement)

    def _assign(self, target: nodes.Node, value: _Value) -> None:
        if isinstance(target, nodes.Name):
            self._learn(target.name, value)
        elif isinstance(target, nodes.NSRef):
            holders = self._fact(target.name)  # the server's objects are never namespaces
            sites = {a.site for a in holders if isinstance(a, _Ref) and a.kind == "namespace"}
            if any(isinstance(a, _Unknown) for a in holders):
                sites = set(self.namespaces)
            for site in sites:
                self._learn((site, target.attr), value)
        elif isinstance(target, nodes.Tuple):
            count = len(target.items)
            for index, item in enumerate(target.items):
                self._assign(item, _join(*(_unpack(a, (index, count)) for a in value)))

    def _define(self, owner: nodes.Macro | nodes.CallBlock) -> None:
        name = owner.name if isinstance(owner, nodes.Macro) else "caller"
        self._learn(name, frozenset({_Ref("macro", id(owner))}))
        optional = owner.args[len(owner.args) - len(owner.defaults):]
        for param, default in zip(optional, owner.defaults, strict=True):
            self._learn(param.name, self.value(default))
        if name in self.escaped:  # passed around, so called with arguments the review cannot see
            self._bind_call(owner, [], {}, spread=True)

    def _bind_call(self, owner: nodes.Macro | nodes.CallBlock, args: list[_Value],
                   kwargs: dict[str, _Value], *, spread: bool) -> None:
        params = [p.name for p in owner.args]
        if spread:  # *args or **kwargs: any parameter may get anything
            for name in (*params, "varargs", "kwargs"):
                self._learn(name, _ASSEMBLED)
            return
        for name, value in zip(params, args, strict=False):
            self._learn(name, value)
        required = params[len(args):len(params) - len(owner.defaults)]
        for name in required:
            if name not in kwargs:
                self._learn(name, _DATA)  # missing: undefined
        for name, value in kwargs.items():
            if name in params or name == "caller":
                self._learn(name, value)
        self._learn("varargs", _seq(args[len(params):]))
        self._learn("kwargs", _map({k: v for k, v in kwargs.items()
                                    if k not in params and k != "caller"}))

    def _output(self, body: Sequence[nodes.Node]) -> _Value:
        """The text a block renders: followed when it is only output, without control flow."""
        outputs = [n for n in body if isinstance(n, nodes.Output)]
        if len(outputs) < len(body):
            return _ASSEMBLED
        return _concat([self.value(e) for out in outputs for e in out.nodes])

    def _output_of(self, owner: nodes.Macro | nodes.CallBlock) -> _Value:
        key = id(owner)
        if key not in self.memo:
            self.memo[key] = _ASSEMBLED  # a macro that calls itself: not followed
            self.memo[key] = self._output(owner.body)
        return self.memo[key]

    # Expressions: what they may evaluate to.

    def value(self, node: nodes.Node) -> _Value:
        """Every value ``node`` may have, given what is known of the variables."""
        key = id(node)
        if key not in self.memo:
            self.memo[key] = _ASSEMBLED  # re-entered only by a macro's output calling itself
            try:
                result = self._evaluate(node)
            except RecursionError:  # macros whose output calls macros, too deep to follow
                result = _ASSEMBLED
            self.memo[key] = result
        return self.memo[key]

    def _evaluate(self, node: nodes.Node) -> _Value:
        if isinstance(node, nodes.Const):
            return _const(node.value)
        if isinstance(node, nodes.TemplateData):
            return _string(node.data)
        if isinstance(node, nodes.Name):
            context = _DATA if id(node) in self.context_reads else _NOTHING
            return _join(self._fact(node.name), context)
        if isinstance(node, nodes.Getattr):
            return self._member(self.value(node.node), frozenset({node.attr}))
        if isinstance(node, nodes.Getitem):
            return self._subscript(node)
        if isinstance(node, nodes.Filter):
            return self._filter(node, _ASSEMBLED if node.node is None else self.value(node.node))
        if isinstance(node, nodes.Call):
            return self._call(node)
        if isinstance(node, nodes.Test | nodes.Compare | nodes.Not):
            return _DATA  # a boolean
        return self._compose(node)

    def _compose(self, node: nodes.Node) -> _Value:
        if isinstance(node, nodes.List | nodes.Tuple):
            return _seq([self.value(item) for item in node.items])
        if isinstance(node, nodes.Dict):
            return self._dict(node)
        if isinstance(node, nodes.Concat):
            return _concat([self.value(n) for n in node.nodes])
        if isinstance(node, nodes.CondExpr):
            other = _DATA if node.expr2 is None else self.value(node.expr2)
            return _join(self.value(node.expr1), other)
        if isinstance(node, nodes.And | nodes.Or):
            return _join(self.value(node.left), self.value(node.right))
        if isinstance(node, nodes.Mod):
            right = node.right.items if isinstance(node.right, nodes.Tuple) else [node.right]
            return _combine([self.value(n) for n in (node.left, *right)], _printf)
        operands = [self.value(n) for n in node.iter_child_nodes()]
        rule = _OPERATORS.get(type(node))
        return _derive_all(operands) if rule is None else _combine(operands, rule)

    def _dict(self, node: nodes.Dict) -> _Value:
        entries: dict[str, _Value] = {}
        for pair in node.items:
            (key,) = self.value(pair.key) if len(self.value(pair.key)) == 1 else (None,)
            if not isinstance(key, str):
                return _derive_all([self.value(n) for p in node.items for n in (p.key, p.value)])
            entries[key] = self.value(pair.value)
        return _map(entries)

    def _subscript(self, node: nodes.Getitem) -> _Value:
        value = self.value(node.node)
        if not isinstance(node.arg, nodes.Slice):
            return self._member(value, self.value(node.arg))
        parts = (node.arg.start, node.arg.stop, node.arg.step)
        bounds = [None if p is None else _index(self.value(p)) for p in parts]
        if any(p is not None and b is None for p, b in zip(parts, bounds, strict=True)):
            return _derive_all([value, *(self.value(p) for p in parts if p is not None)])
        return _join(*(_slice(atom, slice(*bounds)) for atom in value))

    def _member(self, value: _Value, key: _Value) -> _Value:
        """``value.key`` or ``value[key]`` (Jinja tries both the attribute and the item)."""
        return _combine([value, key], self._member_of)

    def _member_of(self, value: _Atom, key: _Atom) -> _Value:
        if key is _Unknown.ASSEMBLED:
            return _ASSEMBLED
        if isinstance(value, _Unknown):
            return frozenset({value})
        if isinstance(value, _Ref):
            return self._namespace_member(value, key)
        if isinstance(key, str) and hasattr(_PYTHON_TYPES[type(value)], key):
            return _ASSEMBLED  # a method: what it makes is not followed
        if isinstance(value, _Map):
            if key in value.keys:
                return value.values[value.keys.index(key)]
            return _join(_DATA, *value.values) if key is _Unknown.DATA else _DATA
        items = _sequence(value)
        if items is None or isinstance(key, str | _Seq | _Map | _Ref):
            return _DATA  # undefined
        if key is _Unknown.DATA:
            return _join(_DATA, *items)
        return items[key] if -len(items) <= key < len(items) else _DATA

    def _namespace(self, site: int, kwargs: dict[str, _Value], others: list[_Value]) -> _Value:
        """``namespace(a=…)``; a dict given positionally (``namespace(d)``) gives its entries, and
        what is not a dict the template made gives every attribute unknown values (``"*"``)."""
        for key, value in kwargs.items():
            self._learn((site, key), value)
        for atom in _join(*others):
            if isinstance(atom, _Map):
                for key, value in zip(atom.keys, atom.values, strict=True):
                    self._learn((site, key), value)
            else:
                self._learn((site, "*"), _derive(atom))
        return frozenset({_Ref("namespace", site)})

    def _namespace_member(self, ref: _Ref, key: _Atom) -> _Value:
        if ref.kind != "namespace":
            return _ASSEMBLED  # a macro's .name, .arguments …: strings of the template
        if key is _Unknown.DATA:
            stored = [v for k, v in self.facts.items() if isinstance(k, tuple) and k[0] == ref.site]
            return _join(_DATA, *stored)
        if not isinstance(key, str):
            return _DATA
        declared = any(kw.key == key for kw in self.namespaces[ref.site].kwargs)
        # An attribute not given to namespace() is undefined until a {% set ns.x %} runs.
        return _join(self._fact((ref.site, key)), self._fact((ref.site, "*")),
                     _NOTHING if declared else _DATA)

    def _filter(self, node: nodes.Filter, value: _Value) -> _Value:
        args = [self.value(a) for a in node.args]
        named = [self.value(k.value) for k in node.kwargs]
        named += [self.value(d) for d in (node.dyn_args, node.dyn_kwargs) if d is not None]
        if node.name == "attr" and len(args) == 1 and not named:
            return self._member(value, args[0])
        if node.name in ("default", "d"):
            return _join(value, *args[:1]) if args else _join(value, _string(""))
        keeps_data = node.name in _KEEPS_DATA or (
            node.name == "map" and not args and [k.key for k in node.kwargs] == ["attribute"])
        fold = None if named else _FOLDS.get(node.name)
        named_data = all(_is_data(v) for v in named)

        def apply(atom: _Atom, *arguments: _Atom) -> _Value:
            if atom is _Unknown.DATA and keeps_data:
                return _DATA
            if fold is None or isinstance(atom, _Unknown):
                return _derive(atom, *arguments) if named_data else _ASSEMBLED
            try:
                return fold(atom, *arguments)
            except TypeError:  # arguments the fold does not take
                return _ASSEMBLED
        return _combine([value, *args], apply)

    def _call(self, node: nodes.Call) -> _Value:
        args = [self.value(a) for a in node.args]
        kwargs = {k.key: self.value(k.value) for k in node.kwargs}
        spread = [self.value(d) for d in (node.dyn_args, node.dyn_kwargs) if d is not None]
        if id(node) in self.namespaces:
            return self._namespace(id(node), kwargs, [*args, *spread])
        if self._is_global(node.node, "dict") and not args and not spread:
            return _map(kwargs)
        inputs = [*args, *kwargs.values(), *spread]
        results = []
        for callee in self.value(node.node):
            if isinstance(callee, _Ref) and callee.kind == "macro":
                owner = self.owners[callee.site]
                self._bind_call(owner, args, kwargs, spread=bool(spread))
                results.append(self._output_of(owner))
            elif isinstance(callee, _Unknown):  # the server's functions, methods, …
                results.append(_derive_all([frozenset({callee}), *inputs]))
        return _join(*results)  # nothing where the callee is not callable


_PYTHON_TYPES: Final[dict[type, type]] = {str: str, int: int, _Seq: list, _Map: dict}
"""The Python type a followed value has when rendered, for its methods."""


def _slice(atom: _Atom, where: slice) -> _Value:
    try:
        if isinstance(atom, str):
            return _string(atom[where])
        if isinstance(atom, _Seq):
            return _seq(atom.items[where])
    except ValueError:  # a step of 0: rendering fails
        return _NOTHING
    return frozenset({atom}) if isinstance(atom, _Unknown) else _DATA


# -- The review --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Reach:
    """One place a name is used to reach into an object."""

    name: nodes.Node | str
    """The expression giving the name, or the literal name of ``x.name``."""
    how: str
    target: nodes.Node | None = None
    """The object reached into, where what it is may clear the name (a template's namespace)."""
    dotted: bool = False
    """Jinja reads the name as a dotted path of attributes."""


def _reaches(node: nodes.Node, flow: _Flow) -> Iterator[_Reach]:
    if isinstance(node, nodes.Getattr):
        yield _Reach(node.attr, "attribute", node.node)
    elif isinstance(node, nodes.Getitem) and not isinstance(node.arg, nodes.Slice):
        yield _Reach(node.arg, "subscript", node.node)
    elif isinstance(node, nodes.Filter):
        yield from _filter_reaches(node.name, node.args, node.node, flow)
        for kw in node.kwargs:
            if kw.key == "attribute":
                yield _Reach(kw.value, f"{node.name}(attribute=)", dotted=True)


def _filter_reaches(name: str, args: Sequence[nodes.Expr], target: nodes.Node | None,
                    flow: _Flow) -> Iterator[_Reach]:
    """The attribute-name argument of filter ``name`` among ``args``; ``map('attr', x)`` applies
    the filter its first argument names, to each item (``target`` is then unknown)."""
    position = _ATTRIBUTE_ARGS.get(name)
    if position is not None and len(args) > position:
        target = target if name == "attr" else None
        yield _Reach(args[position], f"{name}() filter", target, dotted=name != "attr")
    if name == "map" and args:
        yield _Reach(args[0], "map() filter")
        for mapped in sorted(a for a in flow.value(args[0]) if isinstance(a, str)):
            yield from _filter_reaches(mapped, args[1:], None, flow)


def _made_here(value: _Value) -> bool:
    """A namespace or dict this template made: every name on it is its data, not Python's, but
    for ``_`` names (``ns.__class__`` is the Namespace type)."""
    return bool(value) and all(
        isinstance(a, _Map) or (isinstance(a, _Ref) and a.kind == "namespace") for a in value)


def _is_internal(name: str, how: str, made_here: bool) -> bool:
    if name.startswith("_"):
        return True
    return not made_here and name in (_DEEP if how == "subscript" else _ATTRIBUTES)


def _judge(flow: _Flow, reach: _Reach, line: int) -> Iterator[TemplateIssue]:
    values = frozenset({reach.name}) if isinstance(reach.name, str) else flow.value(reach.name)
    if _Unknown.ASSEMBLED in values:
        yield TemplateIssue("template.dynamic-name", f"{reach.how} name is assembled at render "
                            "time", line)
    elif _Unknown.DATA in values and reach.how not in _INDEXING:
        yield TemplateIssue("template.dynamic-name", f"{reach.how} name is not written in the "
                            "template", line)
    made_here = reach.target is not None and _made_here(flow.value(reach.target))
    for name in sorted(a for a in values if isinstance(a, str)):
        for part in name.split(".") if reach.dotted else [name]:
            if _is_internal(part, reach.how, made_here):
                yield TemplateIssue("template.internals",
                                    f"{reach.how} {_shown(part)} reaches Python internals", line,
                                    part)


def _shown(name: str) -> str:
    """``name`` quoted for a message; a folded name can be thousands of characters long."""
    return repr(name if len(name) <= 80 else name[:80] + "…")


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
    flow = _Flow(tree)
    flow.solve()
    issues: list[TemplateIssue] = []
    for node in flow.schedule:
        line = node.lineno or 0
        if isinstance(node, nodes.Include | nodes.Import | nodes.FromImport | nodes.Extends):
            issues.append(TemplateIssue(
                "template.loads", f"{type(node).__name__.lower()} loads another template", line))
            continue
        for reach in _reaches(node, flow):
            issues.extend(_judge(flow, reach, line))
    # Strings that spell a dunder but are kept for later, or reach by a way not followed.
    named = {i.name for i in issues}
    for expr in flow.schedule:
        if not isinstance(expr, nodes.Expr) or isinstance(expr, nodes.TemplateData):
            continue  # statements, and text the template prints
        for value in sorted(a for a in flow.value(expr) if isinstance(a, str)):
            if value[:2] == value[-2:] == "__" and value[2:-2].isidentifier() \
                    and value not in named:
                named.add(value)
                issues.append(TemplateIssue(
                    "template.internals", f"string {_shown(value)} names a Python internal",
                    expr.lineno or 0, value))
    return issues
