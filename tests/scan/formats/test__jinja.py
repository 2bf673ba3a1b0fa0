"""The chat-template review: known escape chains and their obfuscations, names assembled through
data flow, and honest templates (in the styles of published ones) that must stay clean."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from jinja2 import Environment
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
    "{% if ns.system %}{{ ns.system }}{% endif %}"
)

# Published chat-template styles, written for these tests: what honest templates do with data flow
# (namespace() state, loop variables, macros, tojson, raise_exception).
LLAMA31_TOOLS = r"""{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set ns = namespace(system='') %}
{%- if messages[0]['role'] == 'system' %}
    {%- set ns.system = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- ns.system }}
{{- "<|eot_id|>" }}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content'] | trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
    {%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>" }}
{%- endif %}
{%- for message in messages %}
    {%- if loop.index0 == 0 and message['role'] == 'assistant' %}
        {{- raise_exception("Conversations start with a user message") }}
    {%- endif %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls | length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", "parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""  # noqa: E501 - published templates have long lines

MISTRAL_TOOLS = r"""{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- set user_messages = loop_messages | selectattr("role", "equalto", "user") | list %}
{%- for message in loop_messages | rejectattr("role", "equalto", "tool") | rejectattr("role", "equalto", "tool_results") | selectattr("tool_calls", "undefined") %}
    {%- if (message["role"] == "user") != (loop.index0 % 2 == 0) %}
        {{- raise_exception("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if tools is not none and (message == user_messages[-1]) %}
            {{- "[AVAILABLE_TOOLS] [" }}
            {%- for tool in tools %}
                {%- set tool = tool.function %}
                {{- '{"type": "function", "function": {' }}
                {%- for key, val in tool.items() if key != "return" %}
                    {%- if val is string %}
                        {{- '"' + key + '": "' + val + '"' }}
                    {%- else %}
                        {{- '"' + key + '": ' + val | tojson }}
                    {%- endif %}
                    {%- if not loop.last %}{{- ", " }}{%- endif %}
                {%- endfor %}
                {{- "}}" }}
                {%- if not loop.last %}{{- ", " }}{%- else %}{{- "]" }}{%- endif %}
            {%- endfor %}
            {{- "[/AVAILABLE_TOOLS]" }}
        {%- endif %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\n\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message.tool_calls is defined and message.tool_calls is not none %}
        {{- "[TOOL_CALLS] [" }}
        {%- for tool_call in message.tool_calls %}
            {%- set out = tool_call.function | tojson %}
            {{- out[:-1] }}
            {%- if not tool_call.id is defined or tool_call.id | length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- ', "id": "' + tool_call.id + '"}' }}
            {%- if not loop.last %}{{- ", " }}{%- else %}{{- "]" + eos_token }}{%- endif %}
        {%- endfor %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"] | trim + eos_token }}
    {%- elif message["role"] == "tool_results" or message["role"] == "tool" %}
        {%- if message.content is defined and message.content.content is defined %}
            {%- set content = message.content.content %}
        {%- else %}
            {%- set content = message.content %}
        {%- endif %}
        {{- '[TOOL_RESULTS] {"content": ' + content | string + ", " }}
        {{- '"call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported!") }}
    {%- endif %}
{%- endfor %}
"""  # noqa: E501 - published templates have long lines

QWEN25_TOOLS = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object within <tool_call></tool_call> XML tags<|im_end|>\n" }}
{%- elif messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content and loop.index0 > ns.last_query_index %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 - published templates have long lines

GEMMA = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""

PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n'"
    " + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

DEEPSEEK = r"""{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}
{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}
        {%- if ns.is_first_sp %}
            {% set ns.system_prompt = ns.system_prompt + message['content'] %}
            {% set ns.is_first_sp = false %}
        {%- else %}
            {% set ns.system_prompt = ns.system_prompt + '\n\n' + message['content'] %}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{{ bos_token }}{{ ns.system_prompt }}
{%- for message in messages %}
    {%- if message['role'] == 'user' %}
        {%- set ns.is_tool = false -%}{{ '<｜User｜>' + message['content'] }}
    {%- endif %}
    {%- if message['role'] == 'assistant' and 'tool_calls' in message %}
        {%- set ns.is_tool = false -%}
        {%- for tool in message['tool_calls'] %}
            {%- if not ns.is_first %}
                {{ '<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n```json\n' + tool['function']['arguments'] + '\n```<｜tool▁call▁end｜>' }}
                {%- set ns.is_first = true -%}
            {%- else %}
                {{ '\n<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n```json\n' + tool['function']['arguments'] + '\n```<｜tool▁call▁end｜>' }}
            {%- endif %}
        {%- endfor %}
        {{ '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' }}
    {%- endif %}
    {%- if message['role'] == 'assistant' and 'tool_calls' not in message %}
        {%- if ns.is_tool %}
            {{ '<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}
            {%- set ns.is_tool = false -%}
        {%- else %}
            {% set content = message['content'] %}
            {% if '</think>' in content %}
                {% set content = content.split('</think>')[-1] %}
            {% endif %}
            {{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}
        {%- endif %}
    {%- endif %}
    {%- if message['role'] == 'tool' %}
        {%- set ns.is_tool = true -%}
        {%- if ns.is_output_first %}
            {{ '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>' }}
            {%- set ns.is_output_first = false %}
        {%- else %}
            {{ '<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>' }}
        {%- endif %}
    {%- endif %}
{%- endfor -%}
{% if ns.is_tool %}{{ '<｜tool▁outputs▁end｜>' }}{% endif %}
{% if add_generation_prompt and not ns.is_tool %}{{ '<｜Assistant｜><think>\n' }}{% endif %}
"""  # noqa: E501 - published templates have long lines

HERMES_TOOLS = r"""{%- macro json_to_python_type(json_spec) %}
{%- set basic_type_map = {
    "string": "str",
    "number": "float",
    "integer": "int",
    "boolean": "bool"
} %}
{%- if basic_type_map[json_spec.type] is defined %}
    {{- basic_type_map[json_spec.type] }}
{%- elif json_spec.type == "array" %}
    {{- "list[" + json_to_python_type(json_spec|items) + "]" }}
{%- elif json_spec.type == "object" %}
    {%- if json_spec.additionalProperties is defined %}
        {{- "dict[str, " + json_to_python_type(json_spec.additionalProperties) + ']' }}
    {%- else %}
        {{- "dict" }}
    {%- endif %}
{%- elif json_spec.type is iterable %}
    {{- "Union[" }}
    {%- for t in json_spec.type %}
        {{- json_to_python_type({"type": t}) }}
        {%- if not loop.last %}{{- "," }}{%- endif %}
    {%- endfor %}
    {{- "]" }}
{%- else %}
    {{- "Any" }}
{%- endif %}
{%- endmacro %}
{{- bos_token }}
{{- '<|im_start|>system\nYou are a function calling AI model. Here are the available tools: <tools> ' }}
{%- for tool in tools %}
    {%- if tool.function is defined %}
        {%- set tool = tool.function %}
    {%- endif %}
    {{- '{"type": "function", "function": {"name": "' + tool.name + '", "description": "' + tool.name + '(' }}
    {%- for param_name, param_fields in tool.parameters.properties|items %}
        {{- param_name + ": " + json_to_python_type(param_fields) }}
        {%- if not loop.last %}{{- ", " }}{%- endif %}
    {%- endfor %}
    {{- ")" }}
    {%- if tool.return is defined %}
        {{- " -> " + json_to_python_type(tool.return) }}
    {%- endif %}
    {{- " - " + tool.description + "\n\n" }}
    {%- for param_name, param_fields in tool.parameters.properties|items %}
        {%- if loop.first %}{{- "    Args:\n" }}{%- endif %}
        {{- "        " + param_name + "(" + json_to_python_type(param_fields) + "): " + param_fields.description|trim }}
    {%- endfor %}
    {{- '", "parameters": ' }}
    {%- if tool.parameters.properties | length == 0 %}
        {{- "{}" }}
    {%- else %}
        {{- tool.parameters|tojson }}
    {%- endif %}
    {{- "}" }}
{%- endfor %}
{{- " </tools><|im_end|>\n" }}
{%- for message in messages %}
    {%- if message.role == "user" or message.role == "system" or (message.role == "assistant" and message.tool_calls is not defined) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- for tool_call in message.tool_calls %}
            {{- '\n<tool_call>\n' }}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {%- if tool_call.arguments is defined %}
                {{- '"arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments|tojson }}
                {%- endif %}
            {%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.previtem and loop.previtem.role != "tool" %}
            {{- '<|im_start|>tool\n' }}
        {%- endif %}
        {{- '<tool_response>\n' + message.content + '\n</tool_response>' }}
        {%- if loop.last or loop.nextitem.role != "tool" %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""  # noqa: E501 - published templates have long lines

PUBLISHED_STYLES = [LLAMA31_TOOLS, MISTRAL_TOOLS, QWEN25_TOOLS, GEMMA, PHI3, DEEPSEEK, HERMES_TOOLS]

# One honest look-alike for each kind of data flow the review follows.
LOOK_ALIKES = [
    # {% set %} with ~ and +, and set blocks
    "{% set key = 'con' ~ 'tent' %}{{ message[key] }}"
    "{% set h = '<|' + message.role + '|>' %}{{ h }}",
    "{% set system %}You are a helpful assistant.{% endset %}{{ system }}",
    "{% set key %}role{% endset %}{{ messages[0][key] }}{% set t | upper %}inst{% endset %}{{ t }}",
    # namespace() attributes, and dicts the template made, are data whatever they are called
    "{% set ns = namespace(field='content') %}{% set ns.field = 'role' %}{{ message[ns.field] }}",
    "{% set ns = namespace(os='linux', system='') %}{{ ns.os }}{{ ns['popen'] }}"
    "{{ ns|attr('eval') }}",
    "{% set roles = {'system': '<<SYS>>', 'user': '[INST]'} %}{{ roles.system }}"
    "{{ roles[message.role] }}",
    # loop variables
    "{% for key in ['role', 'content'] %}{{ message[key] }}{{ message|attr(key) }}{% endfor %}",
    "{% for k, v in {'user': 'U', 'assistant': 'A'}|items %}{{ k }}{{ v }}{% endfor %}",
    "{% for m in messages %}{% for part in m.content %}{{ part['text'] }}{% endfor %}{% endfor %}",
    # filters and operators
    "{{ '%s: %s'|format(message.role, message.content) }}"
    "{% set tag = '<|%s|>' % 'user' %}{{ tag }}",
    "{{ dict(role=1, content=2)|join(', ') }}{{ message.content|replace('\\n', ' ')|lower }}",
    "{% set field = ['role', 'content']|last %}{{ message[field] }}{{ message['content'][1:] }}",
    "{{ messages[loop_start:] }}{{ tools|selectattr('type', 'equalto', 'function')|list }}",
    # macros and {% call %}
    "{% macro render(m, key='content') %}{{ m[key] | trim }}{% endmacro %}"
    "{% for m in messages %}{{ render(m) }}{{ render(m, 'role') }}{% endfor %}",
    "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}"
    "{% call wrap('tools') %}{{ tools | tojson }}{% endcall %}",
    "{% macro each(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}"
    "{% call(m) each(messages) %}{{ m['content'] }}{% endcall %}",
    "{% macro field(name) %}{{ tool|map(attribute=name)|join }}{% endmacro %}{{ field('name') }}",
]


@pytest.mark.parametrize("template", [
    BENIGN_TEMPLATE, CHATML, "", "plain text {# note #}", *PUBLISHED_STYLES, *LOOK_ALIKES])
def test_honest_templates_have_no_issues(template: str) -> None:
    assert review(template) == []


def test_namespace_attribute_named_like_os_system_is_data() -> None:
    # The bug report: Llama-3.1-style ns.system was critical. A namespace() only holds data;
    # only its "_" names reach Python (ns.__class__ is the Namespace type).
    assert review(LLAMA31_TOOLS) == []
    assert {i.name for i in review("{% set ns = namespace() %}{{ ns.__class__ }}")} == {
        "__class__"}
    # Where ns may still be the server's object, .system is judged as today.
    maybe = "{% if c %}{% set ns = namespace() %}{% endif %}{{ ns.system('id') }}"
    assert {i.name for i in review(maybe)} == {"system"}


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


# Each reaches ''.__class__ through data flow: rendered by plain Jinja, it prints <class 'str'>.
# None spells the name where a constant fold alone would find it.
FLOW_ESCAPES = [
    # {% set %}, set blocks (with a filter, with output), with
    "{% set x = '__cla' ~ 'ss__' %}{{ ''[x] }}",
    "{% set c = '__cla' %}{% set x = c + 'ss__' %}{{ ''|attr(x) }}",
    "{% set x %}__class__{% endset %}{{ ''|attr(x) }}",
    "{% set x %}__cla{% endset %}{{ ''|attr(x ~ 'ss__') }}",
    "{% set x | lower %}__CLASS__{% endset %}{{ ''|attr(x) }}",
    "{% set a = 'ss' %}{% set x %}__cla{{ a }}__{% endset %}{{ ''|attr(x) }}",
    "{% set a, b = '__cla', 'ss__' %}{{ ''|attr(a ~ b) }}",
    "{% with a = '__cla' %}{{ ''|attr(a ~ 'ss__') }}{% endwith %}",
    # namespace() attributes
    "{% set ns = namespace(a='__cla') %}{% set ns.a = ns.a ~ 'ss__' %}{{ ''|attr(ns.a) }}",
    "{% set ns = namespace() %}{% set ns.n = '__cla' %}{{ ''[ns.n ~ 'ss__'] }}",
    "{% set p = '__cla' %}{% set ns = namespace({'a': p ~ 'ss__'}) %}{{ ''|attr(ns.a) }}",
    # loop variables: lists, tuples, dict keys, unpacking, joins, indexing
    "{% for n in ['__cla'] %}{{ ''|attr(n ~ 'ss__') }}{% endfor %}",
    "{% for n in ('ss__',) %}{{ ''|attr('__cla' ~ n) }}{% endfor %}",
    "{% for k in {'__cla': 1} %}{{ ''|attr(k ~ 'ss__') }}{% endfor %}",
    "{% for k in dict(__cla=1) %}{{ ''|attr(k ~ 'ss__') }}{% endfor %}",
    "{% for a, b in [('__cla', 'ss__')] %}{{ ''|attr(a ~ b) }}{% endfor %}",
    "{% set c = '__cla' %}{% for n in [[c, 'ss__']|join] %}{{ ''|attr(n) }}{% endfor %}",
    "{% set l = ['__cla', 'ss__'] %}{% for i in range(1) %}{{ ''|attr(l[i] ~ l[i + 1]) }}"
    "{% endfor %}",
    # filters and operators
    "{% set f = '%s%s'|format('__cla', 'ss__') %}{{ ''|attr(f) }}",
    "{% set f = '%s%s' % ('__cla', 'ss__') %}{{ ''|attr(f) }}",
    "{% set f = dict(__cla=1, ss__=2)|join %}{{ ''|attr(f) }}",
    "{% set u = '_' %}{{ ''|attr([u, 'class', u]|join(u)) }}",
    "{% set x = 'X' %}{{ ''|attr('XXclassXX'|replace(x, '_')) }}",
    "{% set f = ' __SSALC__ '|trim|lower|reverse|string %}{{ ''|attr(f) }}",
    "{% set f = 'x__class__y' %}{{ ''|attr(f[1:-1]) }}",
    "{% set c = '__cla' %}{{ ''|attr(['x', c ~ 'ss__']|last) }}{{ ''|attr([c ~ 'ss__']|first) }}",
    "{% set c = '__cla' %}{% set l = ['x', c ~ 'ss__'] %}{{ ''|attr(l[1]) }}",
    "{% set c = '__cla' ~ 'ss__' %}{{ ''|attr(c|list|join) }}",
    "{% set c = 'ss__' %}{{ ['']|map(attribute='__cla' ~ c)|list }}",
    "{% set c = 'ss__' %}{{ ['']|map('attr', '__cla' ~ c)|list }}",
    # macros and {% call %}
    "{% macro m(n) %}{{ ''|attr(n) }}{% endmacro %}{{ m('__cla' ~ 'ss__') }}",
    "{% macro m(n) %}{{ ''|attr(n) }}{% endmacro %}{% set s = 'ss__' %}{{ m(n='__cla' ~ s) }}",
    "{% macro m(n='__cla') %}{{ ''|attr(n ~ 'ss__') }}{% endmacro %}{{ m() }}",
    "{% macro m() %}__class__{% endmacro %}{{ ''|attr(m()) }}",
    "{% macro m() %}{{ ''|attr(varargs|join) }}{% endmacro %}{{ m('__cla', 'ss__') }}",
    "{% macro m() %}{{ ''|attr(kwargs|join) }}{% endmacro %}{{ m(__cla=1, ss__=2) }}",
    "{% macro m() %}{{ ''|attr(caller()) }}{% endmacro %}{% call m() %}__class__{% endcall %}",
    "{% macro m() %}{{ ''|attr(caller('ss__')) }}{% endmacro %}"
    "{% call(s) m() %}__cla{{ s }}{% endcall %}",
    "{% macro m(n) %}{{ ''|attr(n) }}{% endmacro %}{% set f = m %}{{ f('__cla' ~ 'ss__') }}",
]


@pytest.mark.parametrize("template", FLOW_ESCAPES)
def test_names_assembled_through_data_flow_are_judged(template: str) -> None:
    assert "<class 'str'>" in Environment().from_string(template).render()  # a real escape hop
    issues = review(template)
    assert "__class__" in {i.name for i in issues if i.rule == "template.internals"}


@pytest.mark.parametrize(("template", "name"), [
    ("{% set p = 'po' ~ 'pen' %}{{ x[p] }}", "popen"),
    ("{% set s = 'sys' %}{% set ns = namespace() %}{{ x|attr(s ~ 'tem') }}", "system"),
    ("{% set p = 'a.__cla' %}{{ x|sort(false, false, p ~ 'ss__') }}", "__class__"),
    ("{{ x|groupby('__class__') }}", "__class__"),
    ("{% set p = 'ss__' %}{{ x|map('map', 'attr', '__cla' ~ p)|list }}", "__class__"),
])
def test_other_names_and_attribute_arguments(template: str, name: str) -> None:
    assert name in {i.name for i in review(template) if i.rule == "template.internals"}


@pytest.mark.parametrize("template", [
    # macros called where the review cannot see the arguments
    "{% macro m(n) %}{{ ''|attr(n) }}{% endmacro %}{{ m(*names) }}",
    "{% macro m(n) %}{{ ''|attr(n) }}{% endmacro %}{% set f = [m]|sort|first %}{{ f(x) }}",
    "{% macro m() %}{{ helper(caller) }}{% endmacro %}"
    "{% call(n) m() %}{{ ''|attr(n) }}{% endcall %}",
    # names from the server's data, or read before the template sets them
    "{{ ''|attr(bos_token) }}",
    "{% set a = a ~ 'ss__' %}{{ ''|attr(a) }}",
    # ways of making strings the review does not follow
    "{{ ''|attr('__CLA'.lower() ~ 'ss__') }}",
    "{{ ''|attr(x|default('__cla') ~ 'ss__') }}",
    "{% set ns = namespace(a='') %}{% for i in range(2) %}{% set ns.a = ns.a ~ '_' %}{% endfor %}"
    "{{ ''|attr(ns.a ~ 'class' ~ ns.a) }}",
    "{% for n in names %}{{ ''|attr(n ~ 'x') }}{% endfor %}",
])
def test_names_the_review_cannot_follow_are_dynamic(template: str) -> None:
    assert "template.dynamic-name" in {i.rule for i in review(template)}


_C = "{% set c = '__cla' %}"
_DYNAMIC = {"template.dynamic-name"}
_INTERNALS = {"template.internals"}


@pytest.mark.parametrize(("template", "rules"), [
    # lists and dicts too long or too deeply nested to follow item by item
    ("{% set l = [" + "'_', " * 300 + "] %}{{ x|attr(l|join) }}", _DYNAMIC),
    (_C + "{% set l = [[[[[c]]]]] %}{{ x|attr(l[0][0][0][0][0] ~ 'ss__') }}", _DYNAMIC),
    ("{{ x|attr(dict(" + ", ".join(f"k{i}=1" for i in range(300)) + ")|join) }}", _DYNAMIC),
    # what fails when rendered gives no name at all
    ("{% for c in 5 %}{{ x|attr(c) }}{% endfor %}{% for a, b in [1] %}{{ x|attr(a) }}{% endfor %}",
     set()),
    ("{{ x|attr('%s%s' % ('__cla',)) }}{{ x|attr(('ab'[::0])) }}", set()),
    ("{{ x|attr(5|join) }}{{ x|attr(5|first) }}{{ x|attr('a'()) }}{{ x|attr(5|list) }}", set()),
    # numbers, lists and slices are followed
    (_C + "{% set l = ['a', c ~ 'ss__'] %}{{ x|attr(l[0 + 1]) }}{{ x[2 * 3] }}", _INTERNALS),
    (_C + "{{ x|attr(([c] + ['ss__'])|join) }}{{ x|attr([1, c ~ 'ss__'][1:][0]) }}", _INTERNALS),
    (_C + "{{ x|attr([c, 'ss__'][1:]|first ~ '') }}", set()),
    # filters given what they do not fold: assembled
    (_C + "{{ x|attr(c|replace('a')) }}{{ x|attr(c ~ [1]|join(['a'])) }}", _DYNAMIC),
    (_C + "{{ x|attr(c|replace(1, 'a')) }}{{ x|attr((c ~ 'aa')|replace('a', 'b' * 2000)) }}",
     _DYNAMIC),
    (_C + "{{ x|attr(c|trim(1)) }}{{ x|attr([c]|trim) }}{{ x|attr(5|reverse) }}", _DYNAMIC),
    # namespaces and dicts the review cannot see into
    ("{% set d = {k: '__cla'} %}{{ x|attr(d.q ~ 'ss__') }}", _DYNAMIC),
    (_C + "{% set ns = namespace(x) %}{% set n2 = namespace(c) %}{{ y|attr(ns.a) }}"
     "{{ y|attr(n2.a) }}", _DYNAMIC),
    ("{% set ns = x %}{% set ns.a = '__cla' %}{% set n2 = namespace() %}"
     "{{ y|attr(n2.a ~ 'ss__') }}", _DYNAMIC | _INTERNALS),  # any namespace may be the one set
    (_C + "{% set ns = namespace(a=c ~ 'ss__') %}{{ y|attr(ns[k]) }}{{ y|attr(ns[0]) }}",
     _DYNAMIC | _INTERNALS),
    # macros: a missing argument is undefined, a macro's own attributes are not followed
    ("{% macro m(a) %}{{ x|attr(a) }}{% endmacro %}{{ m() }}", _DYNAMIC),
    ("{% macro m() %}{% endmacro %}{{ x|attr(m.name) }}", _DYNAMIC),
    ("{{ x|attr(m()) }}{% set m = 'a' %}", _DYNAMIC),
])
def test_edges_of_what_is_followed(template: str, rules: set[str]) -> None:
    assert {i.rule for i in review(template)} == rules


def test_a_review_too_deep_for_python_is_an_issue(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_deep(self: object) -> None:
        raise RecursionError
    monkeypatch.setattr("bastion.scan.formats._jinja._Flow.solve", too_deep)
    assert [i.rule for i in review("{{ x }}")] == ["template.syntax"]


def test_names_assembled_at_render_time_are_flagged() -> None:
    issues = review("{{ x|attr(request.args.a ~ 'b') }}{{ y[(z ~ 'c')] }}")
    assert [i.rule for i in issues] == ["template.dynamic-name", "template.dynamic-name"]


def test_honest_lookups_by_variable_are_not_flagged() -> None:
    assert review("{% for k in keys %}{{ d[k] }}{{ items[loop.index0] }}{% endfor %}") == []
    # ...but attr() and attribute= take names honest templates write out.
    assert [i.rule for i in review("{% for k in keys %}{{ d|attr(k) }}{% endfor %}")] == [
        "template.dynamic-name"]


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
    # Parsed fine, and reviewed without recursion: 20000 'a' are past folding, so assembled.
    deep_add = "{{ x|attr(" + " + ".join(["'a'"] * 20000) + ") }}"
    assert [i.rule for i in review(deep_add)] == ["template.dynamic-name"]
    # Macros whose output calls the next macro, deeper than Python's stack: still reviewed.
    chain = "".join(f"{{% macro m{i}() %}}{{{{ m{i + 1}() }}}}{{% endmacro %}}" for i in range(600))
    chain += "{% macro m600() %}__class__{% endmacro %}{{ x|attr(m0()) }}"
    assert "template.syntax" not in {i.rule for i in review(chain)}


def test_folding_is_bounded() -> None:
    # 'a' * 10**9 is never built: folding gives up and the name counts as assembled.
    (issue,) = review("{{ x|attr('a' * 1000000000) }}")
    assert issue.rule == "template.dynamic-name"
    many = "[" + ", ".join(f"'k{i}'" for i in range(65)) + "]"
    assert [i.rule for i in review(f"{{% for n in {many} %}}{{{{ x[n] }}}}{{% endfor %}}")] == [
        "template.dynamic-name"]  # more candidate values than followed
    assert review(f"{{% for n in {many[:-8]}] %}}{{{{ x[n] }}}}{{% endfor %}}") == []
    # A value passed back through 300 variables needs more rounds than are run: given up on.
    chain = "".join(f"{{% set v{i} = v{i + 1} ~ '_' %}}" for i in range(300))
    assert [i.rule for i in review(chain + "{% set v300 = '' %}{{ x|attr(v0) }}")] == [
        "template.dynamic-name"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="{}%#()[]|~+*'\"._ abcgl=\n-0123456789", max_size=120))
def test_fuzz_review_never_raises(template: str) -> None:
    for issue in review(template):
        assert issue.rule.startswith("template.")


_PIECES = [
    "{% set a = b ~ '_' %}", "{% set b = [a, 'c'] %}", "{% for a in b %}", "{% endfor %}",
    "{% set ns = namespace(a=b) %}", "{% set ns.a = ns.a ~ a %}", "{{ x|attr(a) }}",
    "{{ x[ns.a] }}", "{% macro m(a, b='_') %}", "{% endmacro %}", "{{ m(a, b=b) }}",
    "{% call(a) m(b) %}", "{% endcall %}", "{{ caller(a) }}", "{% set c %}{{ a }}{% endset %}",
    "{{ (a|join)[1:] }}", "{{ '%s_' % a }}", "{{ dict(a=b)|items|list }}", "{{ b|first }}",
    "{% if a %}", "{% endif %}", "{% with b = a ~ c %}", "{% endwith %}", "{{ varargs[0] }}",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=14))
def test_fuzz_data_flow_never_raises(pieces: list[str]) -> None:
    for issue in review("".join(pieces)):
        assert issue.rule.startswith("template.")
