"""What a route is handed besides its request: the process's ``Resources``, which ``create_api`` keeps on
``app.state.resources`` (a route takes ``res: Res``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.resources import Resources


def app_resources(request: Request) -> Resources:
    """The resources the app was built over."""
    return request.app.state.resources


Res = Annotated[Resources, Depends(app_resources)]
