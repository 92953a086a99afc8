"""The HTTP service: `create_app` serves translators through a micro-batcher."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
from importlib import resources
from typing import Literal

from fastapi import FastAPI, HTTPException
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from tandem.config import ConfigError, DecodeConfig
from tandem.errors import TandemError
from tandem.serve.batcher import Batcher, QueueFull
from tandem.serve.limits import BodyLimit
from tandem.serve.settings import ServeSettings
from tandem.translator import Translation, Translator
from tandem.version import __version__

# uvicorn configures this logger, so the warm-up lines appear with its own.
log = logging.getLogger("uvicorn.error")
WARM_UP_TEXT = "Go."


class TranslateRequest(BaseModel):
    """POST /v1/translate's body; the decoding fields are `DecodeConfig`'s."""

    model: str | None = None  # may be left out when one model is served
    inputs: list[str]
    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_size: int = DecodeConfig.beam_size
    nbest: int = DecodeConfig.nbest
    alpha: float = DecodeConfig.alpha
    max_length: int | None = None
    attention: bool = False  # attention weights: not served yet (501)


class HypothesisOut(BaseModel):
    text: str
    score: float | None


class ResultOut(BaseModel):
    source: str
    hypotheses: list[HypothesisOut]


class TranslateResponse(BaseModel):
    model: str
    results: list[ResultOut]


def create_app(models: dict[str, Translator], settings: ServeSettings | None = None) -> FastAPI:
    """The service for `models` (name -> Translator), ready once each has decoded a warm-up.

    Args:
        models: the translators served, by the name requests give.
        settings: batching and limits (default `ServeSettings()`).
    Returns:
        FastAPI: run it with uvicorn, or call it with FastAPI's TestClient (as a context
        manager, so that the batcher starts and stops with it).
    """
    settings = settings or ServeSettings()
    if not models:
        raise ValueError("create_app needs at least one model")

    def translate(name: str, decode: DecodeConfig, texts: list[str]) -> list[Translation]:
        return list(models[name].translate_stream(texts, decode))

    state = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher = Batcher(
            translate, settings.max_batch_size, settings.max_wait_ms, settings.max_queue
        ).start()
        app.state.batcher = batcher
        warm_up = (batcher, models, settings, state)
        threading.Thread(target=_warm_up, args=warm_up, daemon=True).start()
        yield
        await asyncio.to_thread(batcher.close)  # decodes what is queued, then stops

    app = FastAPI(title="tandem", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _add_routes(app, models, settings, state)
    return app


async def _invalid_request(request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with the values it echoes made JSON: NaN and Infinity (which Python's
    JSON reads) as strings, and bytes that are not UTF-8 (a body not sent as JSON) replaced."""
    return JSONResponse({"detail": jsonable_encoder(_echoable(exc.errors()))}, status_code=422)


def _echoable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {key: _echoable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_echoable(item) for item in value]
    return value


def _warm_up(batcher: Batcher, models, settings: ServeSettings, state: dict) -> None:
    """Compile each model's default search by translating once; then the service is ready."""
    try:
        for name in models:
            batcher.submit(name, _decode_config(settings), [WARM_UP_TEXT]).result()
            log.info("tandem serve: model %s warmed up", name)
    except Exception:  # the service stays unready (503), and says why in its log
        log.exception("tandem serve: warm-up failed")
        return
    state["ready"] = True
    log.info("tandem serve: ready")


def _decode_config(settings: ServeSettings, **options) -> DecodeConfig:
    # Batches are never larger than max_batch_size: one compiled shape per setting.
    return DecodeConfig(batch_size=settings.max_batch_size, **options)


def _add_routes(app: FastAPI, models, settings: ServeSettings, state: dict) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("tandem.serve").joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/health/live")
    def live() -> dict:
        return {"status": "live"}

    @app.get("/health/ready")
    def ready():
        if not state["ready"]:
            return JSONResponse({"status": "warming up"}, status_code=503)
        return {"status": "ready"}

    @app.get("/v1/models")
    def list_models() -> dict:
        return {
            "tandem_version": __version__,
            "models": [
                {
                    "name": name,
                    "family": translator.config.model.family,
                    "source_vocabulary_size": len(translator.source_vocab),
                    "target_vocabulary_size": len(translator.target_vocab),
                }
                for name, translator in models.items()
            ],
        }

    @app.post("/v1/translate", response_model=TranslateResponse)
    async def translate(request: TranslateRequest) -> dict:
        name = _model_name(request.model, models)
        decode = _check_request(request, settings)
        try:
            future = app.state.batcher.submit(name, decode, request.inputs)
        except QueueFull as exc:
            raise HTTPException(503, f"busy: {exc}", headers={"Retry-After": "1"}) from None
        try:
            translations = await asyncio.wait_for(
                asyncio.wrap_future(future), settings.decode_timeout_s
            )
        except TimeoutError:
            limit = f"{settings.decode_timeout_s:g} s (--decode-timeout-s)"
            raise HTTPException(504, f"decoding took longer than {limit}") from None
        except TandemError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"model": name, "results": [dataclasses.asdict(t) for t in translations]}


def _model_name(asked: str | None, models: dict) -> str:
    names = ", ".join(models)
    if asked is None:
        if len(models) == 1:
            return next(iter(models))
        raise HTTPException(422, f"model: name one of the models served: {names}")
    if asked not in models:
        raise HTTPException(404, f"model {asked!r} is not served; the models are: {names}")
    return asked


def _check_request(request: TranslateRequest, settings: ServeSettings) -> DecodeConfig:
    """The request's decoding settings, after its limits are checked (422 naming them)."""
    if request.attention:
        raise HTTPException(501, "attention: attention weights are not served yet")
    if not request.inputs:
        raise HTTPException(422, "inputs: give at least one text")
    if len(request.inputs) > settings.max_inputs:
        limit = f"{settings.max_inputs} (--max-inputs)"
        raise HTTPException(422, f"inputs: {len(request.inputs)} texts, over the limit of {limit}")
    for number, text in enumerate(request.inputs):
        try:  # JSON's "\ud800" escapes parse to lone surrogates, which no answer can encode
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise HTTPException(
                422, f"inputs[{number}]: not valid Unicode (a lone surrogate)"
            ) from None
        if len(text) > settings.max_input_chars:
            limit = f"{settings.max_input_chars} characters (--max-input-chars)"
            raise HTTPException(
                422, f"inputs[{number}]: {len(text)} characters, over the limit of {limit}"
            )
    options = request.model_dump(exclude_unset=True, exclude={"model", "inputs", "attention"})
    try:
        return _decode_config(settings, **options)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
