"""The test client speaking JSON to the API as a signed-in member of staff."""

from __future__ import annotations

import json
from typing import Any


def as_(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


def post(client: Any, url: str, body: Any, **headers: Any) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json", **headers)


def patch(client: Any, url: str, body: Any) -> Any:
    return client.patch(url, json.dumps(body), content_type="application/json")
