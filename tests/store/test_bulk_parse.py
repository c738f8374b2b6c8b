"""The JSON Lines user parser: valid files parse, anything else fails with UserLinesError naming the line."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csscert.bulk import ImportedUser, UserLinesError, parse_user_lines


def test_a_valid_file() -> None:
    lines = [
        '{"name": "alice", "projects": ["eu-de_logs", "0123456789abcdef0123456789abcdef"],'
        ' "password": "pw"}\n',
        "\n",
        '{"name": " bob ", "projects": []}\n',
        '{"name": "carol", "password": null, "projects": null}',
    ]
    assert parse_user_lines(lines) == [
        ImportedUser(1, "alice", ("eu-de_logs", "0123456789abcdef0123456789abcdef"), "pw"),
        ImportedUser(3, "bob", (), None),
        ImportedUser(4, "carol", (), None),
    ]


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        (['{"name": "a"}', "{nope"], 2, "not valid JSON"),
        (['["a"]'], 1, "expected a JSON object"),
        (['{"projects": []}'], 1, 'missing "name"'),
        (['{"name": ""}'], 1, "empty"),
        (['{"name": 7}'], 1, "must be a string"),
        (['{"name": "a", "projects": "p"}'], 1, "must be a list"),
        (['{"name": "a", "projects": [1]}'], 1, "must be a string"),
        (['{"name": "a", "password": 5}'], 1, "must be a string"),
        (['{"name": "a", "role": "admin"}'], 1, "unknown field 'role'"),
        (['{"name": "a"}', "", '{"name": "a "}'], 3, "already on line 1"),
        (['{"name": "' + "x" * 65 + '"}'], 1, "longer than 64"),
        (['{"name": "a\\u0000b"}'], 1, "control character"),
        (['{"name": "\\ud800"}'], 1, "surrogate"),
        (["[" * 20_000 + "]" * 20_000], 1, "not valid JSON"),
        (["[" * 100_000 + "]" * 100_000], 1, "longer than"),
        (['{"name": "a", "n": ' + "9" * 5000 + "}"], 1, "not valid JSON"),
    ],
)
def test_errors_name_the_line_and_the_problem(lines: list[str], line: int, words: str) -> None:
    with pytest.raises(UserLinesError) as caught:
        parse_user_lines(lines)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"line {line}: ")
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_user_objects = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=70), _json_values)},
    optional={
        "projects": st.one_of(st.lists(st.text(max_size=20), max_size=4), _json_values),
        "password": st.one_of(st.none(), st.text(max_size=20), _json_values),
        "extra": _json_values,
    },
)
_lines = st.one_of(
    st.text(max_size=200),
    _json_values.map(json.dumps),
    _user_objects.map(json.dumps),
    _user_objects.map(lambda v: json.dumps(v, ensure_ascii=False)),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_lines, max_size=8))
def test_never_crashes_with_anything_but_its_own_error(lines: list[str]) -> None:
    try:
        users = parse_user_lines(lines)
    except UserLinesError as exc:
        assert 1 <= exc.line <= len(lines)
        assert str(exc).startswith(f"line {exc.line}: ")
        return
    names = [u.name for u in users]
    assert len(names) == len(set(names))
    for user in users:
        assert user.name and user.name == user.name.strip() and len(user.name) <= 64
        assert all(isinstance(p, str) and p for p in user.projects)
        assert user.password is None or isinstance(user.password, str)
        assert json.loads(lines[user.line - 1])  # the line it came from


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=30),
        unique=True,
        max_size=10,
    )
)
def test_what_is_written_is_read_back(names: list[str]) -> None:
    lines = [json.dumps({"name": n, "projects": ["p"], "password": n[::-1]}) for n in names]
    parsed = parse_user_lines(lines)
    assert [(u.name, u.projects, u.password) for u in parsed] == [(n, ("p",), n[::-1]) for n in names]
