"""BoundedCache keeps track of its NEGATIVE entries, so dropping them never scans the cache."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from csscert.cache import MISSING, NEGATIVE, BoundedCache


def test_drop_negatives_forgets_exactly_the_negative_entries() -> None:
    cache: BoundedCache[str, str] = BoundedCache("t", 100, 1 << 20)
    cache.put("known", "value")
    cache.put("unknown", NEGATIVE)
    cache.put("made-later", NEGATIVE)
    cache.put("made-later", "now it exists")  # a negative replaced by a value is no longer negative
    cache.drop_negatives()
    assert cache.get("known") == "value"
    assert cache.get("made-later") == "now it exists"
    assert cache.get("unknown") is MISSING
    assert len(cache) == 2


# Each step: put a value, put NEGATIVE, pop, or drop negatives, on a small key space, in a cache
# small enough to evict; after each step the cache must agree with a plain dict model.
_steps = st.lists(
    st.tuples(st.sampled_from(["value", "negative", "pop", "drop"]), st.integers(0, 12)), max_size=60
)


@given(_steps)
def test_negative_bookkeeping_matches_a_plain_model_through_puts_pops_and_evictions(
    steps: list[tuple[str, int]],
) -> None:
    cache: BoundedCache[int, str] = BoundedCache("t", 5, 1 << 20)
    model: dict[int, object] = {}
    for op, key in steps:
        if op == "value":
            cache.put(key, f"v{key}")
            model.pop(key, None)
            model[key] = f"v{key}"
        elif op == "negative":
            cache.put(key, NEGATIVE)
            model.pop(key, None)
            model[key] = NEGATIVE
        elif op == "pop":
            cache.pop(key)
            model.pop(key, None)
        else:
            cache.drop_negatives()
            model = {k: v for k, v in model.items() if v is not NEGATIVE}
        while len(model) > 5:  # first in, first out, as the cache evicts
            model.pop(next(iter(model)))
        assert {k: cache.peek(k) for k in range(13) if cache.peek(k) is not MISSING} == model
    cache.drop_negatives()
    assert all(cache.peek(k) is not NEGATIVE for k in range(13))
