from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from src.core.errors import problem_responses
from src.core.resources import Resources, resources
from src.slices.signup.command import SignUp
from src.slices.signup.schemas import SignUpRequest, SignUpResponse


class _CountInvalidSignups(APIRoute):
    """Counts `signup_requests_total{status="invalid"}` for bodies FastAPI refuses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                request.app.state.resources.metrics.signup_requests.labels(status="invalid").inc()
                raise

        return counted


_STRING = {"type": "string"}
router = APIRouter(prefix="/api/v1", tags=["signup"], route_class=_CountInvalidSignups)


async def sign_up(res: Annotated[Resources, Depends(resources)]) -> SignUp:
    return SignUp(res.unit_of_work, res.hasher, res.metrics.signup_requests)


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SignUpResponse,
    summary="Create an account",
    responses={
        201: {
            "headers": {"Location": {"description": "The new user", "schema": {"type": "string"}}}
        },
        **problem_responses(409, 422),
    },
)
async def signup(
    body: SignUpRequest,
    response: Response,
    use_case: Annotated[SignUp, Depends(sign_up)],
) -> SignUpResponse:
    user = await use_case.execute(body)
    response.headers["Location"] = f"/api/v1/users/{user.user_id}"
    return SignUpResponse(
        id=user.user_id,
        name=user.name,
        email=user.email,
        display_name=user.display_name,
        phone_number=user.phone_number,
        country=user.country,
        state=user.state,
        role=user.role,
        created_at=user.created_at,
    )
