"""Hypothesis strategies for signed requests: header names and values granian passes through,
query pairs of any text, the content types the SDK treats differently."""

from __future__ import annotations

import string

from hypothesis import strategies as st

VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
RESERVED_HEADERS = {
    "x-sdk-date",
    "x-project-id",
    "x-auth-token",
    "x-security-token",
    "x-sdk-content-sha256",
    "x-subject-token",
}
CONTENT_TYPES = [
    "application/json",
    "application/json;charset=UTF-8",
    "text/plain",
    "application/octet-stream",
]


header_names = (
    st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=12)
    .map(lambda s: "x-" + s)
    .filter(lambda n: n not in RESERVED_HEADERS and not n.endswith("-"))
)
# Granian passes only visible ASCII (and inner spaces) through in header values, as HTTP/1.1 intends.
header_values = st.text(alphabet=VISIBLE + " ", min_size=1, max_size=24).filter(lambda v: v.strip() != "")
query_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=0, max_size=12
)
query_pairs = st.lists(
    st.tuples(query_text.filter(lambda k: k not in ("format", "password")), query_text), max_size=4
)


@st.composite
def extra_headers(draw: st.DrawFn) -> dict[str, str]:
    names = draw(st.lists(header_names, max_size=4, unique=True))
    headers = {}
    for name in names:
        shown = "".join(c.upper() if draw(st.booleans()) else c for c in name)  # any case on the wire
        headers[shown] = draw(header_values)
    if draw(st.booleans()):
        headers["X_Unsigned_" + draw(st.sampled_from("abc"))] = draw(header_values)  # "_" names: unsigned
    return headers
