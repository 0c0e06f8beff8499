from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from src.core.db.uow import UnitOfWork
from src.core.errors.openapi import problem_responses
from src.core.resources import Resources, resources, unit_of_work
from src.slices.signup.commands import SignUp, SignUpCommand
from src.slices.signup.schemas import SignUpRequest, SignUpResponse


class _CountInvalidSignups(APIRoute):
    """Counts `signup_requests_total{status="invalid"}` for bodies FastAPI refuses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def counted(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:
                request.app.state.resources.signup_outcomes.labels(status="invalid").inc()
                raise

        return counted


router = APIRouter(prefix="/api/v1", tags=["signup"], route_class=_CountInvalidSignups)


async def sign_up(
    res: Annotated[Resources, Depends(resources)],
    uow: Annotated[UnitOfWork, Depends(unit_of_work)],
) -> SignUp:
    return SignUp(uow, res.hasher, res.signup_outcomes, res.settings.signup_role)


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
    """Create an account with a name, an e-mail address and a password.

    The e-mail address is stored lower-cased and the password only as a bcrypt hash, never
    answered. The answer is the new account's private profile, with `Location` naming the
    user. 409 `email_taken` / `phone_taken` when the address or phone number belongs to
    another account, also when two signups race for it."""
    user = await use_case.execute(SignUpCommand(**body.model_dump()))
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
        is_active=True,
        created_at=user.created_at,
    )
