"""The HTTP service: `create_app` serves translators through a micro-batcher."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import threading
from importlib import resources
from typing import Literal, NamedTuple

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
from tandem.translator import Attention, Translator
from tandem.version import __version__

# uvicorn configures this logger, so the warm-up lines appear with its own.
log = logging.getLogger("uvicorn.error")
# Above 8 rows, batches are decoded at multiples of this (see `batch_rows`).
BATCH_STEP = 8


class TranslateRequest(BaseModel):
    """POST /v1/translate's body; the decoding fields are `DecodeConfig`'s."""

    model: str | None = None  # may be left out when one model is served
    inputs: list[str]
    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_size: int = DecodeConfig.beam_size
    nbest: int = DecodeConfig.nbest
    alpha: float = DecodeConfig.alpha
    max_length: int | None = None
    attention: bool = False  # each hypothesis's attention weights (attention models only)


class AttentionOut(BaseModel):
    source_tokens: list[str]
    output_tokens: list[str]
    weights: list[list[float]]  # (output tokens, source tokens), each row summing to 1


class HypothesisOut(BaseModel):
    text: str
    score: float | None
    attention: AttentionOut | None = None  # asked for with "attention": true


class Problem(BaseModel):
    """A refusal: what was wrong, in words (or FastAPI's list of validation errors)."""

    detail: str | list[dict]


# The refusals /v1/translate documents, each with its reason.
REFUSALS = {
    404: "the model asked for is not served",
    413: "the body is over --max-body-bytes",
    422: "the body is not a valid request, or over a limit (named)",
    503: "the queue is full (--max-queue): retry after Retry-After seconds",
    504: "decoding took longer than --decode-timeout-s",
}


class Options(NamedTuple):
    """What a batch's group shares besides its model: requests differing in these are
    decoded apart."""

    decode: DecodeConfig
    attention: bool


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

    def translate(name: str, options: Options, texts: list[str]) -> list[dict]:
        translator = models[name]
        # The batch's rows: the smallest of `batch_rows` that holds it, each compiled at
        # warm-up, so that one request alone decodes in a batch of one.
        sizes = batch_rows(settings.max_batch_size)
        rows = next((size for size in sizes if size >= len(texts)), sizes[-1])
        decode = dataclasses.replace(options.decode, batch_size=rows)
        translations = list(translator.translate_stream(texts, decode))
        answers = [dataclasses.asdict(translation) for translation in translations]
        if options.attention:
            _add_attention(translator, decode, translations, answers)
        return answers

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
        for name, translator in models.items():
            shapes = 0
            for rows in batch_rows(settings.max_batch_size):
                decode = _decode_config(settings, batch_size=rows)
                shapes += batcher.call(translator.warm_up, decode).result()
            batcher.call(getattr, translator, "has_attention").result()  # read once, here
            log.info("tandem serve: model %s warmed up (%d shapes compiled)", name, shapes)
    except Exception:  # the service stays unready (503), and says why in its log
        log.exception("tandem serve: warm-up failed")
        return
    state["ready"] = True
    log.info("tandem serve: ready")


def batch_rows(max_batch_size: int) -> list[int]:
    """The batch sizes the server decodes at: 1, 2, 4, 8, then multiples of 8, up to
    `max_batch_size` (a batch of 22 pays for 24 rows, not 32).

    Example:
        >>> batch_rows(32)
        [1, 2, 4, 8, 16, 24, 32]
    """
    sizes = [1, 2, 4] + list(range(8, max_batch_size, BATCH_STEP))
    return [size for size in sizes if size < max_batch_size] + [max_batch_size]


def _decode_config(settings: ServeSettings, **options) -> DecodeConfig:
    return DecodeConfig(**{"batch_size": settings.max_batch_size, **options})


def _add_attention(translator: Translator, decode: DecodeConfig, translations, answers) -> None:
    """Each decoded hypothesis's attention weights, into `answers` (empty sources have none)."""
    pairs = [
        (number, rank, translation.source, hypothesis.text)
        for number, translation in enumerate(translations)
        if translation.source.strip()
        for rank, hypothesis in enumerate(translation.hypotheses)
    ]
    if not pairs:
        return
    weights: list[Attention] = translator.attention(
        [source for _, _, source, _ in pairs], [text for _, _, _, text in pairs], decode.max_length
    )
    for (number, rank, _, _), attention in zip(pairs, weights, strict=True):
        answers[number]["hypotheses"][rank]["attention"] = dataclasses.asdict(attention)


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
                    "attention": translator.has_attention,
                }
                for name, translator in models.items()
            ],
        }

    @app.post(
        "/v1/translate",
        response_model=TranslateResponse,
        responses={code: {"model": Problem, "description": why} for code, why in REFUSALS.items()},
    )
    async def translate(request: TranslateRequest) -> dict:
        name = _model_name(request.model, models)
        options = Options(_check_request(request, settings), request.attention)
        if request.attention and not models[name].has_attention:
            raise HTTPException(
                422, f"attention: model {name!r} has no attention, so no weights to return"
            )
        try:
            future = app.state.batcher.submit(name, options, request.inputs)
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
        return {"model": name, "results": translations}


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
    for field, most, flag in (
        ("beam_size", settings.max_beam_size, "--max-beam-size"),
        ("max_length", settings.max_decode_length, "--max-decode-length"),
    ):
        value = options.get(field)
        if isinstance(value, int) and value > most:
            raise HTTPException(422, f"{field}: {value}, over the limit of {most} ({flag})")
    try:
        return _decode_config(settings, **options)
    except ConfigError as exc:
        raise HTTPException(422, str(exc)) from None
