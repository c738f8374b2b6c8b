"""The web console at ``/console``: server-rendered pages for people, on the API's port.

This module is all the route table imports: a path test and a handler that imports the pages
(and Jinja2) on the first console request, so a worker that only serves downloads never loads
them. Pages live in :mod:`.pages`, the session cookie and CSRF tokens in :mod:`.session`, the
timeline picture in :mod:`.timeline`, templates and the CSS/JS files in package data.
"""

from __future__ import annotations

from csscert.api.request import Request
from csscert.api.wire import ErrorShape, Response
from csscert.errors import CsscertError
from csscert.service import Service

__all__ = ["HTML_SHAPE", "PREFIX", "handle", "is_console_path"]

PREFIX = "/console"


def is_console_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def handle(service: Service, request: Request) -> Response:
    from csscert.api.console.pages import handle as pages

    return await pages(service, request)


def _error_of(error: CsscertError, request_id: str) -> Response:
    from csscert.api.console.render import error_page

    return error_page(error.status, str(error), request_id, error)


def _internal(request_id: str) -> Response:
    from csscert.api.console.render import error_page

    return error_page(500, "Something went wrong on the server; the log names this request.", request_id)


HTML_SHAPE = ErrorShape("console", _error_of, _internal)
