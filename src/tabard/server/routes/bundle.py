"""The trust domain's SPIFFE bundle, served unauthenticated as the bundle endpoint requires.

SPIFFE Federation §4 (https_web profile): GET returns the current bundle as JSON; the server
must not require client authentication on this path.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from tabard.server.deps import Services

router = APIRouter(tags=["bundle"])


@router.get(
    "/bundle",
    summary="SPIFFE bundle (JWKS) of this trust domain",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def bundle(services: Services) -> Response:
    current = services.authority.bundle()
    return Response(
        current.to_json(),
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={current.refresh_hint or 300}",
                 "ETag": f'"{current.sequence}"'},
    )
