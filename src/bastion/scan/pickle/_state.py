"""State that a reviewed class's own ``__setstate__`` runs as code.

scipy.stats distributions (``rv_generic`` and every subclass, in scipy or not) ``exec`` the
``_parse_arg_template`` string of their state when unpickled, to rebuild their argument
parsers. The class is benign; the string is the pickle's. So a distribution's state passes only
when that string is what scipy itself writes: three ``def`` statements whose bodies return
their own arguments, nothing else.

    >>> check_state({"_parse_arg_template": "def _parse_args(self, loc=0):\\n    return (), loc"})
    >>> check_state({"_parse_arg_template": "import os; os.system('id')"}) is not None
    True
"""

from __future__ import annotations

import ast
from typing import Final

__all__ = ["SINK_KEYS", "check_state"]

_TEMPLATE: Final = "_parse_arg_template"
SINK_KEYS: Final = frozenset({_TEMPLATE})
"""State keys whose values some class executes; kept however large the state dict is."""
_FUNCTIONS: Final = frozenset({"_parse_args", "_parse_args_rvs", "_parse_args_stats"})
_NODES: Final = (ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Tuple,
                 ast.Name, ast.Load, ast.Constant, ast.keyword, ast.Starred)


def check_state(items: dict[object, object]) -> str | None:
    """What is wrong with a state dict's executed fields, or None."""
    if _TEMPLATE not in items:
        return None
    template = items[_TEMPLATE]
    if type(template) is not str:
        return f"{_TEMPLATE} is not a plain string (it is executed as code)"
    return _template_problem(template)


def _template_problem(template: str) -> str | None:
    try:
        tree = ast.parse(template)
    except (SyntaxError, ValueError):
        return f"{_TEMPLATE} is not the argument parser scipy writes (it does not parse)"
    for statement in tree.body:
        if not isinstance(statement, ast.FunctionDef) or statement.name not in _FUNCTIONS \
                or statement.decorator_list or statement.returns or len(statement.body) != 1:
            return f"{_TEMPLATE} holds code beyond scipy's three argument parsers"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):  # only  return self._argcheck_rvs(<names>, size=size)
            func = node.func
            if not (isinstance(func, ast.Attribute) and func.attr == "_argcheck_rvs"
                    and isinstance(func.value, ast.Name) and func.value.id == "self"):
                return f"{_TEMPLATE} calls something other than self._argcheck_rvs"
        elif isinstance(node, ast.Attribute):
            if node.attr != "_argcheck_rvs":
                return f"{_TEMPLATE} reaches an attribute ({node.attr})"
        elif not isinstance(node, _NODES):
            return f"{_TEMPLATE} holds {type(node).__name__}, which scipy's parsers never do"
    return None
