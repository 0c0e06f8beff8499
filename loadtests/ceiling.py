"""The ceiling for `make bench`: bare FastAPI on the same uvicorn (uvloop, httptools, one
worker) returning a small JSON object. Nothing Inkwell can do per request is cheaper."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok", "service": "ceiling"}
