"""The ceiling: a trivial RSGI app answering the same PEM bytes, served by granian like csscert.

No routing, no authentication, no request id: whatever csscert costs beyond this is ours,
and whatever this costs beyond nginx is the Python server stack's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_BODY = Path(os.environ["CEILING_BODY_FILE"]).read_bytes()
_HEADERS = [("content-type", "application/octet-stream"), ("content-length", str(len(_BODY)))]


class App:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        protocol.response_bytes(200, _HEADERS, _BODY)


app = App()
