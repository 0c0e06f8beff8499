from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from src.core.validation import MinVisible, MultiLine

Prompt = Annotated[
    str,
    StringConstraints(min_length=3, max_length=2000),
    MultiLine,
    MinVisible(3),
    Field(description="What the draft should be about: 3-2000 characters."),
]


class AIDraftCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "An introduction to Python's asyncio for web developers",
                    "tags": ["python", "asyncio"],
                }
            ]
        },
    )

    prompt: Prompt
    tags: Annotated[
        list[Annotated[str, StringConstraints(max_length=100)]],
        Field(
            max_length=10,
            description="The draft's tags, normalized and checked as on `POST /api/v1/content`.",
        ),
    ] = []
