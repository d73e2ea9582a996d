#!/usr/bin/env python3
"""Writes cases.jsonl: engine feature cases for tests/ref/jinja2.sh. Each case
is {"id", "template", "vars"?, "literals"?, "data"?, "train"?, "xfail"?},
"vars" an object or the name of one in varsets.json; the engine
(tests/tools/jinja-render.c) and Python jinja2 (tests/ref/jinja2_ref.py) must
agree on the text, or both fail (and on the message for raise_exception).
"data"/"train", when present, are the bytes the engine must flag as data /
trained, concatenated. "xfail" names a known divergence from jinja2 that is
out of scope: the check then asserts that the engine still differs (so the
list stays true) and counts it apart. Run from this directory after editing."""
import json

cases = []


def case(id_, template, vars=None, literals=None, data=None, train=None, xfail=None):
    c = {"id": id_, "template": template}
    if xfail is not None:
        c["xfail"] = xfail
    if vars is not None:
        c["vars"] = vars
    if literals is not None:
        c["literals"] = literals
    if data is not None:
        c["data"] = data
    if train is not None:
        c["train"] = train
    if any(x["id"] == id_ for x in cases):
        raise SystemExit(f"duplicate case id {id_}")
    cases.append(c)


def many(prefix, templates, vars=None):
    for i, t in enumerate(templates):
        case(f"{prefix}_{i:02d}", t, "V" if vars is V else vars)


MSGS = [{"role": "system", "content": " Be nice. "},
        {"role": "user", "content": "Hello <s> {{ x }}"},
        {"role": "assistant", "content": "Hi!\n"},
        {"role": "user", "content": "Bye"}]
V = {"s": "  Hello, World  ", "n": 7, "f": 2.5, "neg": -3, "z": 0, "t": True, "fa": False,
     "nil": None, "e": "", "lst": [3, 1, 2], "strs": ["b", "A", "c", "a"],
     "d": {"b": 2, "a": 1, "c": None}, "nested": {"x": {"y": [10, 20, {"z": "deep"}]}},
     "users": [{"name": "ann", "age": 31, "admin": True}, {"name": "Bob", "age": 25},
               {"name": "cy", "age": 40, "admin": False}],
     "msgs": MSGS, "csv": "a,b,,c", "uni": "Ünïcödé 你好 🎉", "words": "one  two\tthree\nfour",
     "floats": [4.0, 1e-05, 1e16, 0.1, -0.0, 1.5e300, 123456.789, 1e-7, 100.0],
     "big": 12345678901234567890, "bigneg": -9223372036854775808, "i64": 9223372036854775807,
     "mixed": [1, "two", 3.0, None, True, [4], {"five": 5}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {"a": 1}}}]}

# ---- whitespace control ----
many("ws", [
    "a\n{% if true %}\nb\n{% endif %}\nc",
    "a\n  {% if true %}\n  b\n  {% endif %}\nc",
    "a  {% if true %}b{% endif %}  c",
    "a\n  {%- if true %}b{% endif -%}  \n\nc",
    "a\n  {%+ if true %}b{% endif %}\nc",
    "a\n{% if true +%}\nb{% endif %}\nc",
    "  {{ 'x' }}  \n  {{- 'y' -}}  \n z",
    "line\n    {# comment #}\nnext",
    "line\n    {#- comment -#}   \nnext",
    "x {#+ keep +#} y\n{# c #}\nz",
    "{% raw %}{{ not rendered }}{% if %}{% endraw %}",
    "a\n  {% raw %}\n  {{ x }}\n  {% endraw %}\nb",
    "a {%- raw -%}  {{ x }}  {%- endraw -%} b",
    "\t\t{% for i in [1,2] %}\n\t{{ i }}\n\t\t{% endfor %}\ndone",
    "{% for i in [1, 2] -%}\n   {{ i }}\n{%- endfor %}",
    "text  {% if true %}  inline  {% endif %}  more\n",
    "a\r\nb\r\n{% if true %}\r\nc{% endif %}\rd\n",
    "{{ 'x' }}\n\n",
    "{% if true %}a{% endif %}\n\n",
    "  {% set x = 1 %}\n  {{ x }}",
    "x\n   {%- set y = 2 %}   \n{{ y }}",
    "{%- if true -%}\n\n  a  \n\n{%- endif -%}",
    "{{- ' lead' }} {{ 'trail ' -}} \n x",
    "  \n  {% if false %}no{% else %}  yes  {% endif %}  \n",
    "{% for x in [1] %}{# c #}\n{{ x }}{% endfor %}",
    "a{#\nmulti\nline\n#}\nb",
    "   {{ 1 }}{% if true %}\n   x{% endif %}",
    "{% macro m() %}\n  body\n{% endmacro %}\n[{{ m() }}]",
    "x {%- if true %} y {% endif -%} z",
])

# ---- if / elif / else ----
many("if", [
    "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}",
    "{% if z %}a{% elif neg < 0 %}b{% endif %}",
    "{% if e %}nonempty{% else %}empty{% endif %}",
    "{% if nil is none %}none{% endif %}{% if undefined_var %}x{% else %}undef{% endif %}",
    "{% if lst %}L{% endif %}{% if [] %}E{% endif %}{% if d %}D{% endif %}{% if {} %}F{% endif %}",
    "{% if 0.0 %}a{% elif '' %}b{% elif 'x' %}c{% endif %}",
    "{% if n == 7 and not fa or nil %}yes{% endif %}",
    "{% if not n is defined %}a{% elif not nope is defined %}b{% endif %}",
], V)

# ---- for loops ----
many("for", [
    "{% for x in lst %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}",
    "{% for x in lst %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}",
    "{% for x in lst %}{{ loop.cycle('odd', 'even') }} {% endfor %}",
    "{% for x in lst if x > 1 %}{{ x }}:{{ loop.index }}:{{ loop.length }} {% endfor %}",
    "{% for x in [] %}a{% else %}empty{% endfor %}",
    "{% for x in lst if x > 100 %}a{% else %}none passed{% endfor %}",
    "{% for x in lst %}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in lst %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in d %}{{ k }}{% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}",
    "{% for (a, b) in [(1, 2), (3, 4)] %}{{ a * b }} {% endfor %}",
    "{% for c in 'héllo' %}{{ c }}.{% endfor %}",
    "{% for x in lst %}{% for y in strs %}{{ loop.index }}{{ x }}{{ y }} {% endfor %}|{{ loop.index }}{% endfor %}",
    "{% for x in range(3) %}{{ x }}{% endfor %} {% for x in range(1, 10, 3) %}{{ x }}{% endfor %} {% for x in range(5, 0, -2) %}{{ x }}{% endfor %}",
    "{% for m in msgs %}{{ m.role }}:{{ m['content'] }}|{% endfor %}",
    "{% for m in msgs[1:] %}{{ m.role }} {% endfor %}",
    "{% set total = 0 %}{% for x in lst %}{% set total = total + x %}{% endfor %}{{ total }}",
    "{% for x in lst %}{{ x }}{% else %}never{% endfor %}",
    "{% for x in lst %}{{ loop.depth }}{% for y in [1] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}{% endfor %}",
    "{% for x in lst %}{% if loop.first %}[{% endif %}{{ x }}{% if not loop.last %}, {% endif %}{% if loop.last %}]{% endif %}{% endfor %}",
    "{% for x in users | selectattr('admin') %}{{ x.name }}{% endfor %}",
    "{% for x in lst | sort %}{{ x }}{% endfor %}",
    "{% for i in range(3) %}{% if i == 1 %}{% continue %}{% endif %}{% for j in range(3) %}{% if j == 2 %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
    "{% for x in nil %}a{% endfor %}",
    "{% for x in n %}a{% endfor %}",
    "{% for x in undefined_thing %}a{% else %}b{% endfor %}",
    "{% for x in lst %}{{ x }}{% endfor %}{{ x }}",
    "{% for x, y in d %}{{ x }}{% endfor %}",
    "{% for x in lst %}{{ loop.cycle() }}{% endfor %}",
], V)

# ---- set, block set, namespace ----
many("set", [
    "{% set x = 1 %}{% set y = x + 1 %}{{ x }}{{ y }}",
    "{% set a, b = 1, 2 %}{{ a }}-{{ b }}",
    "{% set a, b = [3, 4] %}{{ a }}-{{ b }}",
    "{% set t = 1, 2 %}{{ t }}",
    "{% set x %}block {{ n }} content{% endset %}[{{ x }}]",
    "{% set x | upper %}shout {{ s }}{% endset %}[{{ x }}]",
    "{% set x | trim | upper %}  a b  {% endset %}[{{ x }}]",
    "{% set ns = namespace(count=0, found=false) %}{% for x in lst %}{% set ns.count = ns.count + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}",
    "{% set ns = namespace() %}{% set ns.a = 'x' %}{{ ns.a }}",
    "{% set ns = namespace(d) %}{{ ns.a }}{{ ns.b }}",
    "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}",
    "{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}",
    "{% set d2 = {'a': 1, 'b': [1, 2]} %}{{ d2.a }}{{ d2['b'][1] }}{{ d2 }}",
    "{% set l = [1, 'a', none, true, 2.0] %}{{ l }}",
    "{% set ns = namespace(items=[]) %}{% for x in lst %}{% set ns.items = ns.items + [x * 2] %}{% endfor %}{{ ns.items }}",
    "{% set ns = namespace(a=1) %}{{ ns }}",
    "{% set x = nil %}{{ x }}",
    "{% set x = 5 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 6 %}{{ m() }}",
], V)

# ---- macros ----
many("macro", [
    "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}",
    "{% macro render(m) %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>{% endmacro %}{% for m in msgs %}{{ render(m) }}{% endfor %}",
    "{% macro f(a, b=2, c=none) %}{{ a }}|{{ b }}|{{ c }}{% endmacro %}{{ f(1) }} {{ f(1, c=3) }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% macro f(x) %}{{ x }}{% endmacro %}{{ f() }}|",
    "{% macro f(x) %}{{ x }}{% endmacro %}{{ f(1, 2) }}",
    "{% macro f(x) %}{{ x }}{% endmacro %}{{ f(y=1) }}",
    "{% macro f() %}  spaced  {% endmacro %}[{{ f() }}]{{ f() | length }}",
    "{% macro f(x) %}{% set y = x * 2 %}{{ y }}{% endmacro %}{{ f(2) }}{{ y }}",
    "{% macro outer() %}{% macro inner() %}in{% endmacro %}[{{ inner() }}]{% endmacro %}{{ outer() }}",
    "{% macro f(items) %}{% for i in items %}{{ i }}{% if not loop.last %},{% endif %}{% endfor %}{% endmacro %}{{ f(lst) }}",
    "{% macro f(a=n * 2) %}{{ a }}{% endmacro %}{{ f() }}",
], V)

# ---- filters ----
many("filter", [
    "{{ d | tojson }}|{{ lst | tojson }}|{{ s | tojson }}|{{ nil | tojson }}|{{ t | tojson }}",
    "{{ nested | tojson(indent=2) }}",
    "{{ tools | tojson(indent=4) }}",
    "{{ uni | tojson }}|{{ 'a\"b\\\\c\\n\\t\\u0001' | tojson }}",
    "{{ floats | tojson }}",
    "{{ big | tojson }} {{ bigneg | tojson }} {{ i64 | tojson }}",
    "{{ {'a': [1, {'b': none}], 'c': []} | tojson(indent=2) }}",
    "{{ [] | tojson(indent=2) }}{{ {} | tojson(indent=2) }}",
    "{{ {1: 'int key', 2.5: 'float', true: 'b', none: 'n'} | tojson }}",
    "{{ (1, 2) | tojson }}",
    "{{ mixed | tojson }}",
    "{{ d | tojson(sort_keys=true) }}",
    "{{ d | tojson(separators=(',', ':')) }}",
    "{{ uni | tojson(ensure_ascii=true) }}",
    "[{{ s | trim }}]|[{{ '  \\n x \\t ' | trim }}]|[{{ 'xxhixx' | trim('x') }}]",
    "{{ s | length }} {{ lst | length }} {{ d | length }} {{ uni | length }} {{ lst | count }}",
    "{{ strs | join }}|{{ strs | join(', ') }}|{{ lst | join('-') }}|{{ users | join(',', attribute='name') }}",
    "{{ undefined_x | default('dflt') }}|{{ nil | default('dflt') }}|{{ e | default('dflt') }}|{{ e | default('dflt', true) }}|{{ fa | d('D', boolean=true) }}",
    "{{ s | upper }}|{{ s | lower }}|{{ 'hello wORLD-foo (bar) x_y' | title }}|{{ 'hELLO world' | capitalize }}",
    "{{ uni | upper }}|{{ 'ǅemal ǆ ß' | upper }}|{{ 'ǅemal İ' | lower }}",
    "{{ lst | first }} {{ lst | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ [] | first }}]",
    "{{ 'abc' | list }} {{ d | list }} {{ (1, 2) | list }}",
    "{{ users | map(attribute='name') | join(',') }}|{{ strs | map('upper') | list }}|{{ users | map(attribute='admin', default='?') | list }}",
    "{{ lst | select('odd') | list }}|{{ lst | reject('odd') | list }}|{{ mixed | select | list }}|{{ lst | select('gt', 1) | list }}",
    "{{ users | selectattr('admin') | map(attribute='name') | list }}|{{ users | rejectattr('admin') | map(attribute='name') | list }}",
    "{{ users | selectattr('age', 'gt', 30) | map(attribute='name') | list }}|{{ users | selectattr('admin', 'defined') | list | length }}",
    "{{ users | selectattr('name', 'equalto', 'Bob') | list }}",
    "{{ d | dictsort }}|{{ d | dictsort(reverse=true) }}|{{ {'b': 1, 'A': 2, 'c': 0} | dictsort }}|{{ {'b': 1, 'A': 2, 'c': 0} | dictsort(true) }}|{{ {'b': 1, 'A': 2, 'c': 0} | dictsort(by='value') }}",
    "{{ lst | sort }}|{{ lst | sort(reverse=true) }}|{{ strs | sort }}|{{ strs | sort(case_sensitive=true) }}|{{ users | sort(attribute='age') | map(attribute='name') | list }}",
    "{{ [3, 1, 3, 2, 1] | unique | list }}|{{ ['a', 'A', 'b'] | unique | list }}|{{ ['a', 'A', 'b'] | unique(true) | list }}",
    "{{ lst | min }} {{ lst | max }} {{ strs | min }} {{ strs | max }} {{ strs | max(case_sensitive=true) }} {{ users | max(attribute='age') }}",
    "{{ lst | sum }} {{ floats[:2] | sum }} {{ users | sum(attribute='age') }} {{ lst | sum(start=10) }}",
    "{{ s | replace('l', 'L') }}|{{ s | replace('l', 'L', 2) }}|{{ 'aaa' | replace('', '-') }}|{{ 'aaa' | replace('a', '') }}",
    "{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }} {{ 7 | round }} {{ -1.5 | round }} {{ 1234.5678 | round(-2) }}",
    "{{ '42' | int }} {{ '4.7' | int }} {{ 4.7 | int }} {{ 'x' | int }} {{ 'x' | int(5) }} {{ '0x1A' | int }} {{ ' 12 ' | int }} {{ true | int }} {{ '1_000' | int }}",
    "{{ '4.5' | float }} {{ 4 | float }} {{ 'x' | float }} {{ '1e3' | float }} {{ ' 2.5 ' | float }} {{ 'inf' | float }} {{ 'nan' | float }}",
    "{{ d | items | list }}|{{ {} | items | list }}",
    "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb\\n' | indent(2, blank=true) }}|{{ 'x\\ny' | indent('> ') }}",
    "{{ words | wordcount }} {{ '' | wordcount }} {{ uni | wordcount }}",
    "{{ '%s is %d years, %.2f%%' | format('Ann', 31, 12.345) }}|{{ '%5s|%-5s|%05d|%x|%r' | format('a', 'b', 42, 255, 'q') }}",
    "{{ n | string }}{{ nil | string }}{{ lst | string }}{{ t | string }} {{ (n | string) ~ 'x' }}",
    "{{ lst | reverse | list }} {{ 'abc' | reverse }} {{ (1, 2) | reverse | list }}",
    "{{ neg | abs }} {{ -2.5 | abs }}",
    "{{ users[0] | attr('name') }}",
    "{{ 'a<b>&\"\\'' | e }}|{{ 'x' | escape }}|{{ '<' | safe }}",
    "{{ lst | map('string') | join('+') }}|{{ lst | map('int') | sum }}",
    "{{ dict(d.items() | rejectattr('1', 'none')) }}",
    "{{ d.items() | selectattr('1') | list }}",
    "{{ users | selectattr('admin', 'true') | list | length }}",
    "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('|') }}",
    "{{ msgs | map(attribute='role') | unique | list }}",
    "{{ s | center(30) if false else 'no center' }}",
    "{{ nested | tojson(indent=0) }}",
    "{% filter upper %}inside {{ s }} filter{% endfilter %}",
    "{{ lst | batch(2) | list }}",
], V)

# ---- tests ----
many("test", [
    "{{ n is defined }} {{ nope is defined }} {{ nope is undefined }} {{ nil is none }} {{ n is none }}",
    "{{ s is string }} {{ n is string }} {{ n is number }} {{ f is number }} {{ t is number }} {{ s is number }}",
    "{{ d is mapping }} {{ lst is mapping }} {{ lst is iterable }} {{ s is iterable }} {{ d is iterable }} {{ n is iterable }}",
    "{{ lst is sequence }} {{ s is sequence }} {{ d is sequence }} {{ n is sequence }}",
    "{{ 10 is divisibleby 5 }} {{ 10 is divisibleby(3) }} {{ n is odd }} {{ n is even }}",
    "{{ 2 is in lst }} {{ 9 is in lst }} {{ 'a' is in d }} {{ 'ell' is in s }}",
    "{{ n is eq 7 }} {{ n is ne 7 }} {{ n is equalto 7 }} {{ n is gt 3 }} {{ n is lt 3 }} {{ n is ge 7 }} {{ n is le 6 }} {{ n is greaterthan 1 }} {{ n is lessthan 1 }} {{ n is == 7 }}",
    "{{ t is boolean }} {{ n is boolean }} {{ t is true }} {{ fa is false }} {{ 1 is true }} {{ f is float }} {{ n is integer }} {{ f is integer }} {{ t is integer }}",
    "{{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'aBc' is lower }} {{ '123' is upper }}",
    "{{ nil is sameas none }} {{ t is sameas true }} {{ 1 is sameas true }}",
    "{{ n is not none }} {{ nope is not defined }} {{ not n is none }}",
    "{{ range is callable }} {{ n is callable }}",
    "{{ msgs[0].content is string and msgs[0].content | length > 0 }}",
    "{{ tools is iterable and tools is not string }}",
], V)

# ---- operators and precedence ----
many("op", [
    "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 6 / 3 }}",
    "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }} {{ 2 ** 0.5 }} {{ 10 / 4 }} {{ 1e300 * 1e10 }}",
    "{{ 1 ~ 2 ~ 'x' ~ nil ~ t ~ lst }} {{ 'a' ~ 1 + 2 }}",
    "{{ -n | abs }} {{ -lst | length if false else 'x' }} {{ - 3 | abs }}",
    "{{ 1 + lst | length }} {{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ 'x' * 0 }}|{{ 'x' * -1 }}|",
    "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 2 > 1 >= 1 }} {{ 1 != 1 }}",
    "{{ 1 in lst }} {{ 5 not in lst }} {{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 'a' in d }} {{ 'a' in ['a'] }} {{ not 1 in lst }}",
    "{{ n and s }}|{{ z and s }}|{{ z or e }}|{{ e or 'fallback' }}|{{ nil or 0 }}|{{ lst and d }}",
    "{{ 'yes' if t else 'no' }} {{ 'yes' if fa else 'no' }} [{{ 'yes' if fa }}] {{ 1 if n > 5 else 2 if n > 3 else 3 }}",
    "{{ not t }} {{ not not n }} {{ not e }} {{ not nope }}",
    "{{ lst[0] }} {{ lst[-1] }} {{ s[2] }} {{ s[-3] }} {{ uni[7] }} {{ nested.x.y[2].z }} {{ nested['x']['y'][0] }} {{ lst.0 }} {{ d.get('a') }}",
    "{{ 1 + 2 == 3 and 2 * 2 == 4 }} {{ 1 + (2 == 3) }} {{ true + 1 }} {{ 1 == true }}",
    "{{ 10 - 2 - 3 }} {{ 2 * 3 % 4 }} {{ 100 / 10 / 5 }} {{ 2 ** 2 * 3 }}",
    "{{ 'a' + 'b' }} {{ [1] + [2, 3] }} {{ (1,) + (2,) }}",
    "{{ 'x' ~ -1 }} {{ 1 - -1 }} {{ +n }} {{ -f }}",
    "{{ n if n is defined else 'u' }} {{ nope if nope is defined else 'u' }}",
    "{{ (s) }} {{ ((1, 2)) }} {{ () }} {{ (1,) }}",
    "{{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ 2.0 * 3 }} {{ 10 ** 18 }} {{ 2 ** 62 }} {{ i64 - 1 }} {{ -i64 - 1 }}",
    "{{ 1 + 'a' }}",
    "{{ 'a' + 1 }}",
    "{{ 1 / 0 }}",
    "{{ 5 // 0 }}",
    "{{ 'a' < 1 }}",
    "{{ nil + 1 }}",
    "{{ 'abc' - 'b' }}",
    "{{ lst | length * 2 }} {{ lst|length>2 }} {{ n - 1|abs }}",
    "{{ 'ab' ~ ('c' if t) ~ 'd' }}",
    "{{ {'a': 1}['a'] }} {{ [1, 2, 3][1] }} {{ 'abc'[1] }} {{ (1, 2)[0] }}",
    "{{ 3 * 2.0 }} {{ 4 // 2.0 }} {{ 7 % 2.5 }} {{ 2 ** 10 }} {{ 9 ** 0.5 }}",
    "{{ 'A' ~ 'B' * 2 }} {{ 2 * 3 ~ 4 }}",
    "{{ 1 in [1.0] }} {{ [] == [] }} {{ {} == {} }} {{ d == {'b': 2, 'a': 1, 'c': none} }} {{ (1, 2) == [1, 2] }}",
], V)

# ---- Python str() of values ----
many("str", [
    "{{ lst }} {{ strs }} {{ d }} {{ nil }} {{ t }} {{ fa }} {{ f }} {{ nested }}",
    "{{ floats }}",
    "{{ mixed }}",
    "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'back\\\\slash', 'nl\\n', 'tab\\t', '\\x01', '\\u00e9', '\\u2028'] }}",
    "{{ 4.0 }} {{ 1e-05 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789.0 }} {{ 0.1 }} {{ 1.5e-10 }} {{ 12345678901234567.0 }} {{ -0.0 }} {{ 2.5e+20 }}",
    "{{ big }} {{ bigneg }} {{ i64 }}",
    "{{ (1, 'a') }} {{ (1,) }} {{ {'k': (1, 2)} }} {{ [none, true] }}",
    "{{ msgs[0] }}",
    "{{ d.items() }} {{ d.keys() }} {{ d.values() }}",
    "{{ uni }} {{ [uni] }}",
    "{{ 1.0 / 3 }} {{ 2 / 3 }} {{ 1e22 }} {{ 1e-4 }} {{ 0.0001 }} {{ 5e-324 }} {{ 1.7976931348623157e308 }}",
])

# ---- string methods ----
many("strm", [
    "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ 'xxaxx'.strip('x') }}][{{ 'abcba'.strip('ab') }}][{{ '  x'.lstrip(' ') }}][{{ '\\n\\tx \\n'.strip() }}]",
    "{{ csv.split(',') }} {{ csv.split(',', 1) }} {{ words.split() }} {{ words.split(None, 1) }} {{ '  a  b  '.split() }} {{ ''.split() }} {{ ''.split(',') }}",
    "{{ csv.rsplit(',', 1) }} {{ csv.rsplit(',') }} {{ 'a b c'.rsplit(' ', 1) }}",
    "{{ s.startswith('  He') }} {{ s.startswith(('x', '  H')) }} {{ s.endswith('  ') }} {{ s.endswith(('a', 'b')) }} {{ 'abc'.startswith('') }}",
    "{{ s.replace('l', '_') }} {{ s.replace('l', '_', 1) }} {{ s.find('o') }} {{ s.find('zz') }} {{ uni.find('你') }} {{ s.rfind('o') }} {{ s.count('l') }}",
    "{{ s.upper() }}|{{ s.lower() }}|{{ 'hello world-foo o\\'neil 3rd'.title() }}|{{ 'hELLO'.capitalize() }}|{{ uni.upper() }}",
    "{{ '-'.join(strs) }} {{ ', '.join(['a', 'b']) }} {{ ''.join('abc') }}",
    "{{ 'abc'.isdigit() }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ 'a1'.isalnum() }} {{ '  '.isspace() }} {{ 'ABC'.isupper() }} {{ 'abc'.islower() }}",
    "{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'x\\n'.splitlines() }}",
    "{{ msgs[0].content.strip() }}|{{ msgs[2]['content'].rstrip('\\n') }}",
    "{{ 'Hello'[1:3] }} {{ 'Hello'[::-1] }} {{ 'Hello'[-3:] }} {{ 'Hello'[:-1] }} {{ uni[::2] }} {{ 'Hello'[10:] }}|{{ 'Hello'[1:100:2] }}",
    "{{ s.split(',')[0].strip() }}",
    "{{ '<|im_end|>'.join(strs) }}",
    "{{ 'a,b'.split(',', maxsplit=0) }} {{ 'a b c'.split(maxsplit=1) }}",
    "{{ 'x'.rjust(3) if false else 'ok' }}",
    "{{ s.strip().lower().replace(',', '').split(' ') }}",
    "{{ 'abc'.upper is defined }} {{ 'abc'.nope is defined }}",
    "{{ s.nosuchmethod() }}",
    "{{ 'a b  c'.split(' ') }} {{ '  a b '.rsplit(None, 1) }} {{ ' a b '.rsplit() }}",
    "{{ 'AbC'.swapcase() if false else 'skip' }} {{ 'abc'.index('b') if false else 'skip' }}",
    "{{ 'a-b_c d'.title() }} {{ 'ǆungla'.title() }} {{ 'ß'.upper() }} {{ 'ﬁne'.upper() }} {{ 'İ'.lower() | length }}",
], V)

# ---- slicing ----
many("slice", [
    "{{ lst[1:] }} {{ lst[:1] }} {{ lst[-2:] }} {{ lst[:-2] }} {{ lst[::-1] }} {{ lst[::2] }} {{ lst[1::-1] }} {{ lst[-1:-4:-1] }} {{ lst[5:] }} {{ lst[-10:10] }}",
    "{{ msgs[1:][0].role }} {{ msgs[:-1] | length }} {{ msgs[::2] | map(attribute='role') | list }}",
    "{{ range(10)[2:8:3] | list }} {{ range(10)[::-3] | list }} {{ range(10)[8:2:-2] | list }} {{ [1, 2, 3][0:0] }}",
    "{{ (1, 2, 3)[1:] }}",
    "{{ lst[::0] }}",
    "{{ s[2:-2] }}|{{ s[:] }}|{{ s[100:] }}|{{ s[-100:3] }}|{{ s[5:1] }}|{{ s[5:1:-1] }}",
], V)

# ---- dict methods ----
many("dict", [
    "{{ d.items() | list }} {{ d.keys() | list }} {{ d.values() | list }}",
    "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.get('c', 'dflt') }}",
    "{% for k, v in nested.x.items() %}{{ k }}:{{ v }}{% endfor %}",
    "{{ d['a'] }} {{ d.a }} {{ d['zz'] }}|{{ d.zz }}|",
    "{{ dict(a=1, b=2) }} {{ dict([('x', 1), ('y', 2)]) }} {{ dict(d, e=5) }} {{ dict() }}",
    "{{ {'items': 1}['items'] }} {{ {'items': 1}.items is defined }} {{ {'pop': 1}.pop is defined }} {{ {'pop': 1}['pop'] }}",
    "{{ {'keys': 'k'}['keys'] }}",
    "{% set x = {'a': 1} %}{{ x.update({'b': 2}) }}",
    "{{ d.items() | map('first') | list }} {{ d | map('upper') | list }}",
    "{{ {'a': 1, 'a': 2} }}",
    "{{ {'content': 'c', 'role': 'r'}.content }}",
    "{{ tools[0].function.name }} {{ tools[0]['function']['parameters'] }}",
], V)

# ---- undefined behaviour ----
many("undef", [
    "[{{ nope }}][{{ nope | default('d') }}][{{ nope | length }}][{{ nope | upper }}][{{ nope ~ 'x' }}]",
    "{{ nope.attr }}",
    "{{ nope['key'] }}",
    "{{ nope() }}",
    "{{ nope + 1 }}",
    "[{{ d.missing }}][{{ lst[10] }}][{{ s.missing }}][{{ nested.x.missing }}]",
    "{{ d.missing.deeper }}",
    "{{ lst[10].x }}",
    "{{ nil.attr }}",
    "{{ n.attr }}",
    "{% if nope %}x{% endif %}{% if not nope %}y{% endif %}{% for x in nope %}z{% endfor %}{{ nope is defined }}",
    "{{ nope == nope }} {{ nope is none }} {{ nope | list }} {{ nope | join(',') }}|",
    "{{ nope | tojson }}",
    "{{ nope < 1 }}",
    "{{ nope | int }} {{ nope | string }}|{{ nope | trim }}|",
    "{{ msgs[0].missing_field }}|{{ msgs[0].tool_calls is defined }}|{{ not msgs[0].tool_calls }}",
    "{{ nope[0] }}",
    "{{ lst.missing() }}",
    "{{ nope.a | default('fallback') }}",
    "{{ (msgs | selectattr('role', 'equalto', 'nope') | first).content }}",
    "{{ d.missing | default('x') }} {{ nope is string }} {{ nope in lst }}",
], V)

# ---- globals ----
many("glob", [
    "{{ raise_exception('Custom failure: roles must alternate') }}",
    "{% if msgs[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
    "before{{ raise_exception('mid-way ' ~ n) }}after",
    "{{ strftime_now('%Y-%m-%d %H:%M:%S %d %b %Y %A %B %j') }}",
    "{{ range(3) | list }} {{ range(0) | list }} {{ range(2, -2, -1) | list }}",
    "{{ namespace(a=1).a }}",
    "{{ range(10000000) | length }}",
    "{{ raise_exception() }}",
    "{{ raise_exception is defined }} {{ strftime_now is callable }}",
], V)

# ---- provenance (data / trained bytes as the engine flags them) ----
case("prov_plain", "A{{ x }}B", {"x": "data"}, data="data")
case("prov_concat", "{{ '<' ~ x ~ '>' }}{{ '[' + x + ']' }}", {"x": "</s>"}, data="</s></s>")
case("prov_literal_var", "{{ bos_token }}{{ x }}{{ eos_token }}", {"x": "mid"},
     literals={"bos_token": "<s>", "eos_token": "</s>"}, data="mid")
case("prov_filters", "{{ x | upper }}|{{ x | trim }}|{{ x[1:3] }}|{{ x.strip() }}",
     {"x": " ab "}, data=" AB ababab")
case("prov_join", "{{ xs | join('<sep>') }}", {"xs": ["a", "b"]}, data="ab")
case("prov_tojson", "{{ obj | tojson }}", {"obj": {"k": "v"}}, data='{"k": "v"}')
case("prov_format", "{{ '%s!' % x }}{{ '<%s>' | format(x) }}", {"x": "y"}, data="yy")
case("prov_macro", "{% macro w(t) %}<{{ t }}>{% endmacro %}{{ w(x) }}", {"x": "in"}, data="in")
case("prov_setblock", "{% set b %}[{{ x }}]{% endset %}{{ b }}", {"x": "z"}, data="z")
# numbers, booleans and None from data render as template text (they cannot
# hold special tokens); a data string inside a repr is data, quotes included
case("prov_numbers", "{{ n }}{{ lst }}", {"n": 5, "lst": ["q"]}, data="'q'")
case("prov_replace", "{{ x | replace('a', '<A>') }}", {"x": "bab"}, data="bb")
case("prov_generation",
     "{% for m in msgs %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<eot>{% endgeneration %}{% else %}{{ m.content }}<eot>{% endif %}{% endfor %}",
     {"msgs": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]},
     data="qaq2a2", train="a<eot>a2<eot>")
case("prov_generation_macro",
     "{% macro m(x) %}[{{ x }}]{% endmacro %}{% generation %}{{ m(y) }}{% endgeneration %}",
     {"y": "Y"}, data="Y", train="[Y]")
case("prov_generation_set",
     "{% generation %}{% set z %}<{{ y }}>{% endset %}{% endgeneration %}{{ z }}",
     {"y": "Y"}, data="", train="")

# ---- more whitespace, lexer and literal details ----
many("lex", [
    "a\n\u3000 {% if true %}x{% endif %}\u00a0\n{{- 'y' }}",
    "a\n  {%- if true %}x{% endif %}",
    "{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000_000 }} {{ 0_0 }} {{ 1e3 }} {{ 1.5e-3 }} {{ 2E2 }} {{ 0.5 }}",
    "{{ '\\x41\\u00e9\\U0001F600\\101\\n\\t|\\q' }}",
    "{{ 'a\\\u00e9b' }}",
    "{{ \"double 'single'\" }} {{ 'single \"double\"' }} {{ 'con' 'cat' \"enated\" }}",
    "{{ x.1.0 }}",
    "{#- lead comment -#}\n  text  \n{#- c #}after",
    "{%- for x in [1,2] -%}\n  {{ x }}\n{%- endfor -%}\n",
    "line1\n    {% raw -%}\n    kept {{ x }}\n    {%- endraw %}\nend",
    "  {% raw %}  {% endraw %}  ",
    "{{- 'x' -}}\n\n{{- 'y' -}}",
    "{% if true %}\n\n{% endif %}",
    "{{ 'a' }}\n{% if true %}\n{{ 'b' }}\n{% endif %}\n{{ 'c' }}",
    "{% for m in msgs %}\n    {%- if m.role == 'user' %}\n        U: {{ m.content }}\n    {%- else %}\n        O: {{ m.content }}\n    {%- endif %}\n{% endfor %}",
    "\t{%- if true -%}\t\n\tx\n{%- endif %}",
    "{{ [1, 2,] }} {{ (1, 2,) }} {{ {'a': 1,} }} {{ f(1,) if false else 'ok' }}",
    "{{ true }} {{ True }} {{ false }} {{ none }} {{ None }}",
    "{{ 'x' if true else 'y' if false else 'z' }}",
    "{% if true %}{{ 'a' }}{%+ if true +%}b{% endif %}\n  c{% endif %}",
], V)

# ---- more filter and method details ----
many("more", [
    "{{ 'ΟΔΟΣ ΣΑΣ'.lower() }} {{ 'ΣΑΣ' | lower }} {{ 'ǆ'.title() }} {{ 'ß'.title() }} {{ 'ﬁx'.capitalize() }}",
    "{{ 'hello world' | center(21) }}|{{ 'abc' | center(2) }}|{{ 'ab' | center(5) }}|{{ 'ab' | center(6) }}",
    "{{ lst | batch(2, 'x') | list }} {{ range(7) | slice(3) | list }} {{ range(7) | slice(3, 0) | list }}",
    "{{ 'The quick brown fox jumps' | truncate(12) }}|{{ 'The quick brown fox' | truncate(12, true) }}|{{ 'short' | truncate(10) }}|{{ 'The quick brown fox jumps over' | truncate(20, false, '…', 0) }}",
    "{{ -7 | round(-1) }} {{ 25 | round(-1) }} {{ 35 | round(-1) }} {{ 1250.0 | round(-2) }} {{ 1350.0 | round(-2) }} {{ 0.125 | round(2) }} {{ 0.375 | round(2) }} {{ 5e-324 | round(400) }} {{ 60.0 | round(-2) }} {{ 50.0 | round(-2) }} {{ -4.0 | round(-2) }}",
    "{{ 2.5 | round(0, 'floor') }} {{ -2.5 | round(0, 'ceil') }} {{ 1.23456 | round(3, 'ceil') }} {{ 5 | round(0, 'ceil') }}",
    "{{ '%s' % 'x' }} {{ '%s-%s' % (1, 2) }} {{ '%d%%' % 50 }} {{ '%(a)s=%(b)d' % {'a': 'k', 'b': 3} }} {{ '%5.1f|%-6d|%+d|% d|%x|%#x|%#o|%o|%X|%e|%g|%G' % (3.14159, 42, 5, 7, -255, 255, 8, -8, 255, 12345.678, 0.00001, 1e20) }}",
    "{{ '%c%c' % (65, 'b') }} {{ '%.2s' % 'abcdef' }} {{ '%*d' % (5, 42) }} {{ '%-*s|' % (4, 'a') }} {{ '%s' % [1, 'a'] }} {{ '%r' % 'q' }} {{ '%s' % none }}",
    "{{ '%d' % 'x' }}",
    "{{ '%s %s' % ('a',) }}",
    "{{ 'abc' % 5 }}",
    "{{ '%z' % 5 }}",
    "{{ '%' % 5 }}",
    "{{ '{} and {}' | format(1, 2) if false else 'skip' }}",
    "{{ [3, 1, 2] | sort(reverse=true) }} {{ [('b', 1), ('a', 2), ('b', 0)] | sort(attribute='0') }} {{ ['b', 'B', 'a'] | sort }} {{ ['b', 'B', 'a'] | sort(reverse=true) }}",
    "{{ ['a', 'A'] | max }} {{ ['A', 'a'] | max }} {{ ['a', 'A'] | min }} {{ [2, 2.0] | max }} {{ [1, 'a'] | sort }}",
    "{{ [[1], [1]] | unique | list }}",
    "{{ ns.a if false else 'x' }}",
    "{{ 3.0 is odd }} {{ 4.0 is even }} {{ 2.5 is even }} {{ 10.0 is divisibleby 2.5 }} {{ true is odd }}",
    "{{ 'a' is even }}",
    "{{ nope is even }}",
    "{{ 5 | indent }}",
    "{{ d | dictsort(by='nope') }}",
    "{{ [1, 2] | dictsort }}",
    "{{ '42' | int(base=16) }} {{ '0x1A' | int(0) }} {{ '0x1A' | int(16) }} {{ '101' | int(2) }} {{ '0b101' | int(0) }} {{ '09' | int(0) }} {{ '-  5' | int }} {{ ' -5 ' | int }} {{ '+5' | int }} {{ '1_0' | int }} {{ '_1' | int }} {{ '1__0' | int }} {{ '١٢' | int if false else 'skip' }}",
    "{{ 'inf' | int }}",
    "{{ 'nan' | int }} {{ '1e3' | int }} {{ '-1.9' | int }} {{ none | int }} {{ [1] | int }} {{ 'x' | float(2.5) }} {{ none | float }} {{ '1_0.5' | float }} {{ '.5' | float }} {{ '5.' | float }} {{ '-Infinity' | float }} {{ '1e' | float }} {{ 'e5' | float }}",
    "{{ users | map(attribute='name') | map('upper') | join(' ') }} {{ [[1, 2], [3]] | map('length') | list }} {{ [' a ', 'b '] | map('trim') | list }}",
    "{{ 'a b c' | wordcount }} {{ 'hello_world foo-bar 3.14 x' | wordcount }} {{ '  ' | wordcount }}",
    "{{ lst | selectattr('real') | list if false else 'skip' }} {{ [0, 1, '', 'a', none, [], [0]] | select | list }} {{ [0, 1, '', 'a', none] | reject | list }}",
    "{{ [1, 2, 3, 4] | select('divisibleby', 2) | list }} {{ ['a', 'B', 'c'] | select('upper') | list }} {{ [none, 1] | reject('none') | list }} {{ [1, 'a', 2.0] | select('number') | list }} {{ [1, 2, 3] | select('in', [2, 3]) | list }}",
    "{{ 'x' ~ 1.0 ~ none ~ true ~ [1] ~ {'a': (1,)} }}",
    "{{ ('a', 'b') | join('-') }} {{ {'a': 1, 'b': 2} | join(',') }} {{ [1, [2, 3]] | join(',') }}",
    "{{ 'aXbXc'.split('X', 1) }} {{ 'aXbXc'.rsplit('X', 1) }} {{ 'a b  c  '.split(None, 1) }} {{ '  a b c'.rsplit(None, 1) }} {{ 'abc'.split('') if false else '' }}",
    "{{ 'abc'.split('') }}",
    "{{ 'a,b'.split(',', -1) }} {{ 'a\u3000b\u00a0c'.split() }} {{ 'x\x1cy'.split() }}",
    "{{ '  xyz  '.strip(' z') }} {{ 'abc'.strip('') }} {{ 'aaa'.lstrip('a') }}| {{ 'abc'.rstrip('cb') }}",
    "{{ 'hello'.startswith('ell', 1) if false else 'skip' }} {{ 'hello'.endswith(('lo',)) }} {{ 'hello'.startswith(['h']) if false else 'skip' }}",
    "{{ 'a%sb' | format('X') }} {{ '%s' | format(none) }} {{ '%(k)s' | format(k='v') }}",
    "{{ {'b': 1, 'a': 2} | dictsort | first }} {{ {'b': 1, 'a': 2}.items() | sort | first }} {{ {'a': [2, 1]}.a | sort }}",
    "{{ (d | dictsort)[0][0] }} {{ d | length }} {{ d.keys() | first }} {{ d.values() | select('none') | list }}",
    "{{ loop is defined }} {% for x in [1] %}{{ loop is defined }}{% endfor %}",
    "{{ 1 if true }}{{ 'x' if false }}|{{ ('x' if false) is defined }}|{{ ('x' if false) ~ 'y' }}",
    "{{ ('x' if false).attr }}",
    "{{ (lst | first).x if false else 'skip' }} {{ ([] | first) is defined }}",
    "{{ ([] | first).x }}",
    "{% for x in [1] %}{{ loop.previtem is defined }}{{ loop.previtem.x }}{% endfor %}",
    "{% macro f(a) %}{{ a.b }}{% endmacro %}{{ f() }}",
    "{{ msgs | selectattr('role', 'in', ['user', 'system']) | map(attribute='content') | map('trim') | join('|') }}",
    "{{ msgs | rejectattr('content', 'none') | list | length }} {{ msgs | selectattr('role', 'ne', 'user') | list | length }}",
    "{{ msgs | map(attribute='role') | select('equalto', 'user') | list | length }}",
    "{{ tools | map(attribute='function') | map(attribute='name') | list }}",
    "{{ tools[0] | tojson(indent=2, sort_keys=true) }}",
    "{{ [1, 'é', {'k': none}] | tojson(true) }} {{ 'é' | tojson(false, 2) }}",
    "{{ {'a': 1} | tojson(indent='--') }} {{ [1, [2, []]] | tojson(indent='\t') }}",
    "{{ {'a': 1, 2: 'b'} | tojson(sort_keys=true) }}",
    "{{ {(1, 2): 1} | tojson }}",
    "{{ namespace(a=1) | tojson }}",
    "{{ 1.0e300 * 1.0e300 }} {{ [1e300 * 1e300, -1e300 * 1e300] | tojson }} {{ (1e300 * 1e300 - 1e300 * 1e300) | tojson }}",
], V)
case("bigint_scalars", "{{ x }}{{ x | tojson }}{{ [x] }}{{ x == x }}{{ x is number }}{{ x is integer }}{{ x > 1 }}{{ x | string | length }}{{ y }} {{ x | int }}",
     {"x": 123456789012345678901234567890, "y": -99999999999999999999})
case("bigint_arith", "{{ x + 1 }}", {"x": 123456789012345678901234567890},
     xfail="integers beyond 64 bits: arithmetic fails instead of giving Python's exact result")
case("int_overflow", "{{ 2 ** 64 }} {{ i64 + 1 }} {{ 10 ** 20 }}", "V",
     xfail="integers beyond 64 bits: arithmetic fails instead of giving Python's exact result")
case("bigint_literal", "{{ 99999999999999999999 }}",
     xfail="integer literals beyond 64 bits are a compile error")
case("print_method", "{{ 'abc'.upper }}",
     xfail="printing a method or function shows a memory address in Python")
case("print_range", "{{ range(3) }} {{ range(10)[2:8:3] }}",
     xfail="range objects are lists here: str() differs (range(0, 3) vs [0, 1, 2])")
case("print_generator", "{{ lst | batch(2) }}", "V",
     xfail="generator-returning filters give lists here: str() differs")
case("named_escape", "{{ '\\N{BULLET}' }}",
     xfail="\\N{name} escapes in string literals are not supported")

# ---- groupby, with, more str methods ----
many("extra", [
    "{% for g in users | groupby('age') %}{{ g.grouper }}:{{ g.list | map(attribute='name') | join(',') }};{% endfor %}",
    "{% for key, items in [{'k': 'b', 'v': 1}, {'k': 'a', 'v': 2}, {'k': 'B', 'v': 3}] | groupby('k') %}{{ key }}={{ items | map(attribute='v') | list }} {% endfor %}",
    "{{ [{'k': 'b'}, {'k': 'A'}, {'k': 'a'}] | groupby('k', case_sensitive=true) }}",
    "{{ users | groupby('admin', default=false) | map(attribute='grouper') | list }}",
    "{{ (users | groupby('age'))[0] }} {{ (users | groupby('age'))[0].list[0].name }} {{ (users | groupby('age'))[0][0] }}",
    "{{ msgs | groupby('role') | map(attribute='grouper') | join(',') }}",
    "{% with a = 1, b = n %}{{ a }}{{ b }}{% set c = 3 %}{{ c }}{% endwith %}[{{ a }}{{ c }}]",
    "{% set a = 5 %}{% with a = a + 1, b = a %}{{ a }} {{ b }}{% endwith %} {{ a }}",
    "{% for x in lst %}{% with y = x * 2 %}{% if y > 4 %}{% break %}{% endif %}{{ y }}{% endwith %}{% endfor %}",
    "{% with %}{% set inner = 1 %}{{ inner }}{% endwith %}{{ inner }}",
    "{{ 'prefix-body'.removeprefix('prefix-') }} {{ 'body.txt'.removesuffix('.txt') }} {{ 'x'.removeprefix('xyz') }} {{ 'a=b=c'.partition('=') }} {{ 'a=b=c'.rpartition('=') }} {{ 'abc'.partition('z') }} {{ 'abc'.rpartition('z') }}",
    "{{ 'ab'.ljust(5, '*') }}|{{ 'ab'.rjust(5) }}|{{ 'ab'.center(7, '-') }}|{{ 'ab'.center(6) }}|{{ '42'.zfill(5) }}|{{ '-42'.zfill(6) }}|{{ 'abc'.index('c') }}|{{ 'abcabc'.rindex('b') }}|{{ 'é'.center(4, 'ü') }}",
    "{{ 'abc'.index('z') }}",
    "{{ 'ab'.center(5, '--') }}",
    "{% set ns.x %}block{% endset %}" if False else "{% set ns = namespace(x=1) %}{{ ns.x }}",
], V)

# ---- found by random differential testing against jinja2 ----
many("diff", [
    "{% filter upper %}{% set x = 1 %}{% endfilter %}[{{ x }}]",
    "{% set y %}{% set x = 1 %}{% endset %}[{{ x }}]",
    "{% for q in [1] %}{% set x = 5 %}{% filter upper %}{{ x }}{% set x = 6 %}{{ x }}{% endfilter %}{{ x }}{% endfor %}",
    "{% if [] | select %}T{% else %}F{% endif %} {{ (lst | select) is sequence }} {{ (lst | select) is iterable }} {{ not (lst | reject) }}",
    "{% set g = lst | select %}{% for x in g %}{{ x }}{% endfor %}|{% for x in g %}{{ x }}{% endfor %}|{{ g | list }}",
    "{% set g = lst | map('string') %}{{ g | first }}{{ g | first }}{{ g | list }}",
    "{% set g = lst | reject('odd') %}{{ 2 in g }}{{ 2 in g }}",
    "{{ lst | select | length }}",
    "{{ (lst | select)[0] }}|{{ n[0] }}|{{ d.items()[0] }}|{{ (users | groupby('age'))[0][0] }}",
    "{{ lst | select | list | length }} {{ lst | unique | list }} {{ d | items | list }} {{ lst | batch(2) | list }} {{ lst | reverse | list }} {{ lst | reverse | first }}",
    "{{ lst | reverse | last }}",
    "{{ 'a' % [1] }}|{{ '%s' % [] }}|{{ 'a' % {} }}|{{ '%s' % [1, 2] }}",
    "{{ '%s %s' % [1, 2] }}",
    "{{ msgs | truncate(5) }}|{{ nope | truncate }}|{{ [1, 2] | truncate(3) }}",
    "{{ true | truncate(5) }}",
    "{{ users | sort(attribute='admin,age') | map(attribute='name') | list }} {{ [3, 1] | sort(attribute='age') }} {{ users | sort(attribute='name', case_sensitive=true) | map(attribute='name') | list }}",
    "{{ nested is lower }} {{ 5 is upper }} {{ ['A'] is upper }}",
    "{{ [1] in d }}",
    "{{ {[1]: 2} }}",
    "{{ (1, [2]) in d }}",
    "{{ n[1:] }}",
    "{{ d[1:] }}",
    "{{ lst[1.5:] }}",
    "{{ (lst | select)[1:] }}",
    "{{ lst[nope:] }}",
    "{{ lst | indent }}",
    "{% for i in [1, 1, 2, 2, 1] %}{{ loop.changed(i) }}{% endfor %} {% for x in [1, 2, 2] %}{{ loop.changed(x, 1) }}{{ loop.changed() }}{% endfor %}",
    "{% macro f(a) %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, b=3) }}{{ f(1) }}",
    "{% macro f(a, b=2) %}{{ a }}{{ b }}{{ kwargs }}{% endmacro %}{{ f(1, 5, a=3) }}",
    "{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, a=2) }}",
    "{% macro f(a) %}{% macro g() %}{{ varargs | length }}{% endmacro %}{{ g() }}{% endmacro %}{{ f(1, 2) }}",
], V)

# ---- parse errors (both must fail) ----
many("perr", [
    "{% if %}x{% endif %}",
    "{% if true %}unclosed",
    "{{ 'unterminated }}",
    "{{ x",
    "{% for %}",
    "{% endfor %}",
    "{{ 1 + }}",
    "{% set %}",
    "{{ x | nosuchfilter }}",
    "{{ x is nosuchtest }}",
    "{% unknowntag %}",
    "{% break %}",
    "{# unterminated comment",
    "{{ }}",
    "{% raw %}no end",
    "{{ (1, 2 }}",
    "{{ [1, 2 }}",
    "{{ {'a' 1} }}",
    "{% macro m(a=1, b) %}{% endmacro %}",
    "{% else %}",
    "{{ a.1.b }}",
    "{{ 1 2 }}",
    "{% for x in y %}{% endif %}",
    "{{ 'a' 'b' }}",
    "{{ x.y.z }}{{ 'ok' }}",
    "{% if 1 %}{% elif %}{% endif %}",
    "{{ 'a' if }}",
    "{% set x = 1 %}{% endset %}",
    "{{ f(a=1, 2) }}",
    "{% macro %}{% endmacro %}",
    "{{ 1 +}} }}",
    "{{ x +}}",
    "{% if true +%}x{% endif %}",
    "{{ 007 }}",
    "{{ 1__0 }}",
    "{{ ) }}",
    "{{ (] }}",
    "{% for x in [1] %}{% generation %}{% break %}{% endgeneration %}{% endfor %}",
    "{% raw %}x{% endraw +%}",
    "{% if true %}{% endfor %}",
    "{{ 'a' ~ }}",
    "{{ x is not }}",
    "{% set x.y = 1 %}",
    "{% for x y in z %}{% endfor %}",
])

with open("varsets.json", "w", encoding="utf-8") as f:
    json.dump({"V": V}, f, ensure_ascii=False, indent=1)
    f.write("\n")
with open("cases.jsonl", "w", encoding="utf-8") as f:
    for c in cases:
        f.write(json.dumps(c, ensure_ascii=False) + "\n")
print(len(cases), "cases")
