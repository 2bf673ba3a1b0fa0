"""The chat-template review: known escape chains and their obfuscations, and honest templates."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from tests.scan.corpus_formats import BENIGN_TEMPLATE

from bastion.scan.formats._jinja import review

# Real-world template shapes: ChatML with namespace(), tool calls with tojson, raise_exception.
CHATML = (
    "{% set ns = namespace(system='') %}{% for m in messages %}{% if m.role == 'system' %}"
    "{% set ns.system = m.content %}{% endif %}{% endfor %}"
    "{% for m in messages %}{% if loop.first and m.role != 'system' %}{{ raise_exception("
    "'roles must alternate') if false }}{% endif %}<|im_start|>{{ m['role'] }}\n"
    "{{ m['content'] | trim }}{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    "{{ messages[-1]['content'][:10] }}{{ tools | map(attribute='name') | join(', ') }}"
)


@pytest.mark.parametrize("template", [BENIGN_TEMPLATE, CHATML, "", "plain text {# note #}"])
def test_honest_templates_have_no_issues(template: str) -> None:
    assert review(template) == []


@pytest.mark.parametrize(
    ("template", "name"),
    [
        ("{{ cycler.__init__.__globals__.os.popen('id').read() }}", "__globals__"),
        ("{{ self._TemplateReference__context }}", "_TemplateReference__context"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__subclasses__"),
        ("{{ ''|attr('__class__') }}", "__class__"),
        ("{{ ''|attr('__cla' ~ 'ss__') }}", "__class__"),
        ("{{ ''|attr(['__', 'class', '__']|join) }}", "__class__"),
        ("{{ ''|attr('_' * 2 + 'class' + '_' * 2) }}", "__class__"),
        ("{{ ''['\\x5f\\x5fclass\\x5f\\x5f'] }}", "__class__"),
        ("{{ ''|attr('__SSALC__'|lower|reverse|reverse) }}", "__ssalc__"),
        ("{{ x|map(attribute='__class__')|list }}", "__class__"),
        ("{{ x|selectattr('__globals__')|list }}", "__globals__"),
        ("{% set g = '__glo' + 'bals__' %}{{ lipsum[g] }}", "__globals__"),
        ("{{ lipsum.__globals__['__builtins__']['__import__']('os') }}", "__import__"),
        ("{{ range.mro }}", "mro"),
        ("{{ x.f_globals }}", "f_globals"),
    ],
)
def test_reaches_for_python_internals(template: str, name: str) -> None:
    issues = review(template)
    assert "template.internals" in {i.rule for i in issues}
    assert name in {i.name for i in issues}


def test_names_assembled_at_render_time_are_flagged() -> None:
    issues = review("{{ x|attr(request.args.a ~ 'b') }}{{ y[(z ~ 'c')] }}")
    assert [i.rule for i in issues] == ["template.dynamic-name", "template.dynamic-name"]


def test_honest_lookups_by_variable_are_not_flagged() -> None:
    assert review("{% for k in keys %}{{ d[k] }}{{ items[loop.index0] }}{% endfor %}") == []


def test_subscript_with_an_ordinary_word_is_not_an_escape() -> None:
    # roles['system'] is data; only attributes named like os.system are escape hops.
    assert review("{{ roles['system'] }}") == []
    assert {i.name for i in review("{{ x.system('id') }}")} == {"system"}


def test_loading_other_templates_and_syntax_errors() -> None:
    assert [i.rule for i in review("{% include 'x.j2' %}")] == ["template.loads"]
    assert [i.rule for i in review("{% import 'x' as y %}")] == ["template.loads"]
    (issue,) = review("{{ unclosed ")
    assert issue.rule == "template.syntax"


def test_deep_nesting_is_an_issue_not_a_crash() -> None:
    assert [i.rule for i in review("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")] == [
        "template.syntax"]
    deep_add = "{{ " + " + ".join(["'a'"] * 20000) + " }}"
    assert [i.rule for i in review(deep_add)] == ["template.syntax"]


def test_folding_is_bounded() -> None:
    # 'a' * 10**9 is never built: folding gives up and the name counts as assembled.
    (issue,) = review("{{ x|attr('a' * 1000000000) }}")
    assert issue.rule == "template.dynamic-name"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}%#()[]|~+*'\"._ abcgl=\n-0123456789", max_size=120))
def test_fuzz_review_never_raises(template: str) -> None:
    for issue in review(template):
        assert issue.rule.startswith("template.")
