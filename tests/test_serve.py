"""`tandem serve`: the micro-batcher, the API and its limits, SIGTERM, and the page in a browser."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jax
import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import free_port
from tandem.serve.app import create_app
from tandem.serve.batcher import Batcher, QueueFull
from tandem.serve.settings import ServeSettings
from tandem.translator import Translator

SRC = Path(__file__).resolve().parents[1] / "src"
STARTUP_TIMEOUT_S = 180.0


# The batcher, with a fake translate function -------------------------------------------------


class FakeTranslate:
    """Records each call; upper-cases texts, and fails for the options "boom"."""

    def __init__(self, delay: float = 0.0):
        self.calls: list[tuple] = []
        self.delay = delay

    def __call__(self, model, options, texts):
        self.calls.append((model, options, list(texts)))
        time.sleep(self.delay)
        if options == "boom":
            raise RuntimeError("this group fails")
        return [f"{model}:{text.upper()}" for text in texts]


@contextlib.contextmanager
def running(batcher: Batcher):
    batcher.start()
    try:
        yield batcher
    finally:
        batcher.close(timeout=10)


def test_requests_within_the_wait_window_are_one_call_sorted_by_length():
    fake = FakeTranslate()
    with running(Batcher(fake, max_batch_size=16, max_wait_ms=300, max_queue=16)) as batcher:
        futures = [batcher.submit("m", "greedy", texts) for texts in (["a"], ["ccc", "bb"], ["dd"])]
        results = [future.result(timeout=10) for future in futures]

    assert results == [["m:A"], ["m:CCC", "m:BB"], ["m:DD"]]
    assert len(fake.calls) == 1
    assert fake.calls[0][2] == ["ccc", "bb", "dd", "a"]  # longest first


def test_groups_by_model_and_options_and_a_failing_group_fails_only_its_requests():
    fake = FakeTranslate()
    with running(Batcher(fake, max_batch_size=16, max_wait_ms=300, max_queue=16)) as batcher:
        greedy = batcher.submit("m", "greedy", ["x"])
        boom = batcher.submit("m", "boom", ["y"])
        other_model = batcher.submit("n", "greedy", ["z"])
        greedy_again = batcher.submit("m", "greedy", ["w"])
        assert greedy.result(timeout=10) == ["m:X"]
        assert greedy_again.result(timeout=10) == ["m:W"]
        assert other_model.result(timeout=10) == ["n:Z"]
        with pytest.raises(RuntimeError, match="this group fails"):
            boom.result(timeout=10)

    assert sorted((model, options) for model, options, _ in fake.calls) == [
        ("m", "boom"),
        ("m", "greedy"),
        ("n", "greedy"),
    ]


def test_a_lone_request_waits_for_nothing_and_those_arriving_meanwhile_are_the_next_batch():
    fake = FakeTranslate()
    started, release = threading.Event(), threading.Event()

    def held(model, options, texts):
        started.set()
        release.wait(10)
        return fake(model, options, texts)

    with running(Batcher(held, max_batch_size=16, max_wait_ms=0, max_queue=16)) as batcher:
        first = batcher.submit("m", "o", ["a"])
        assert started.wait(10)  # decoding "a" alone, without waiting for others
        later = [batcher.submit("m", "o", [text]) for text in ("b", "cc")]
        release.set()
        assert [f.result(timeout=10) for f in [first, *later]] == [["m:A"], ["m:B"], ["m:CC"]]

    assert [texts for _, _, texts in fake.calls] == [["a"], ["cc", "b"]]


def test_a_batch_holds_at_most_max_batch_size_sentences():
    fake = FakeTranslate()
    with running(Batcher(fake, max_batch_size=3, max_wait_ms=200, max_queue=16)) as batcher:
        futures = [batcher.submit("m", "o", ["a", "b"]) for _ in range(3)]
        assert [f.result(timeout=10) for f in futures] == [["m:A", "m:B"]] * 3

    assert [len(texts) for _, _, texts in fake.calls] == [2, 2, 2]


def test_a_full_queue_is_refused_and_close_drains_what_is_queued():
    fake = FakeTranslate(delay=0.3)
    batcher = Batcher(fake, max_batch_size=1, max_wait_ms=0, max_queue=2).start()
    first = batcher.submit("m", "o", ["a"])
    time.sleep(0.1)  # the worker holds the first; two more fill the queue
    queued = [batcher.submit("m", "o", ["b"]), batcher.submit("m", "o", ["c"])]
    with pytest.raises(QueueFull, match="--max-queue"):
        batcher.submit("m", "o", ["d"])
    batcher.close(timeout=10)

    assert [f.result(timeout=0) for f in [first, *queued]] == [["m:A"], ["m:B"], ["m:C"]]
    with pytest.raises(QueueFull, match="shutting down"):
        batcher.submit("m", "o", ["e"])


# The API, on the tiny model ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def translator(tiny_model_dir) -> Translator:
    return Translator.from_dir(tiny_model_dir)


# Batches of 4 at most: three batch sizes (1, 2, 4) compiled at each warm-up.
SETTINGS = ServeSettings(max_body_bytes=2_000, max_inputs=4, max_input_chars=50, max_batch_size=4)


@pytest.fixture(scope="module")
def client(translator):
    with TestClient(create_app({"tiny": translator}, SETTINGS)) as client:
        wait_ready(client.get)
        yield client


def wait_ready(get, timeout: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if get("/health/ready").status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the server was not ready within {timeout} s")


def test_translate_matches_the_translator(client, translator):
    texts = ["Go.", "Hi.", "Help!"]
    response = client.post("/v1/translate", json={"inputs": texts})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny"
    assert [r["source"] for r in body["results"]] == texts
    assert [r["hypotheses"][0]["text"] for r in body["results"]] == translator.translate(texts)


def test_beam_nbest_gives_scored_hypotheses(client, translator):
    request = {"model": "tiny", "inputs": ["Go."], "strategy": "beam", "beam_size": 3, "nbest": 2}
    response = client.post("/v1/translate", json=request)

    assert response.status_code == 200, response.text
    hypotheses = response.json()["results"][0]["hypotheses"]
    expected = translator.translate(["Go."], strategy="beam", beam_size=3, nbest=2)
    assert hypotheses[0]["text"] == expected[0]
    assert all(isinstance(h["score"], float) for h in hypotheses)


def test_health_models_docs_and_page(client, translator):
    assert client.get("/health/live").json() == {"status": "live"}
    assert client.get("/health/ready").status_code == 200
    models = client.get("/v1/models").json()
    assert models["models"] == [
        {
            "name": "tiny",
            "family": translator.config.model.family,
            "source_vocabulary_size": len(translator.source_vocab),
            "target_vocabulary_size": len(translator.target_vocab),
            "attention": False,
        }
    ]
    assert "tandem_version" in models
    assert "/v1/translate" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    assert '<button id="translate">' in client.get("/").text


def body_of_size(size: int) -> bytes:
    """A valid request body of exactly `size` bytes (padded with spaces)."""
    body = json.dumps({"inputs": ["Go."]}).encode()
    return body + b" " * (size - len(body))


@pytest.mark.parametrize("size, status", [(2_000, 200), (2_001, 413)])
def test_body_size_limit(client, size, status):
    response = client.post(
        "/v1/translate", content=body_of_size(size), headers={"content-type": "application/json"}
    )

    assert response.status_code == status, response.text
    if status == 413:
        assert "2000 bytes" in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_refused(client):
    chunks = iter([body_of_size(1_500), b" " * 1_000])  # no Content-Length: chunked
    response = client.post(
        "/v1/translate", content=chunks, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert "--max-body-bytes" in response.json()["detail"]


@pytest.mark.parametrize(
    "inputs, status, named",
    [
        (["Go."] * 4, 200, None),
        (["Go."] * 5, 422, "--max-inputs"),
        (["a" * 50], 200, None),
        (["a" * 51], 422, "--max-input-chars"),
        ([], 422, "at least one"),
    ],
)
def test_input_limits(client, inputs, status, named):
    response = client.post("/v1/translate", json={"inputs": inputs})

    assert response.status_code == status, response.text
    if named:
        assert named in response.json()["detail"]


@pytest.mark.parametrize(
    "body, status, named",
    [
        (b"{not json", 422, None),
        (b'{"inputs": "Go."}', 422, None),
        (b'{"inputs": ["Go."], "strategy": "best"}', 422, None),
        (b'{"inputs": ["Go."], "model": "nope"}', 404, "tiny"),
        (b'{"inputs": ["Go."], "beam_size": 3}', 422, "beam"),
        (b'{"inputs": ["Go."], "attention": true}', 422, "model 'tiny' has no attention"),
        (b'{"inputs": ["Go."], "strategy": "beam", "beam_size": 17}', 422, "--max-beam-size"),
        (b'{"inputs": ["Go."], "max_length": 257}', 422, "--max-decode-length"),
    ],
)
def test_bad_requests_are_refused_by_name(client, body, status, named):
    response = client.post(
        "/v1/translate", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == status, response.text
    if named:
        assert named in response.json()["detail"]


def test_model_may_be_left_out_only_when_one_is_served(translator):
    with TestClient(create_app({"a": translator, "b": translator}, SETTINGS)) as client:
        wait_ready(client.get)
        response = client.post("/v1/translate", json={"inputs": ["Go."]})
        assert response.status_code == 422
        assert "a, b" in response.json()["detail"]
        assert client.post("/v1/translate", json={"model": "b", "inputs": ["Go."]}).is_success


def test_a_decode_over_its_time_budget_is_504(translator):
    settings = ServeSettings(decode_timeout_s=0.05, max_wait_ms=500, max_batch_size=4)
    with TestClient(create_app({"tiny": translator}, settings)) as client:
        wait_ready(client.get)
        response = client.post("/v1/translate", json={"inputs": ["Go."]})

    assert response.status_code == 504
    assert "--decode-timeout-s" in response.json()["detail"]


def test_a_full_queue_is_503_with_retry_after(translator):
    settings = ServeSettings(max_queue=1, max_wait_ms=0, max_batch_size=4)
    app = create_app({"tiny": translator}, settings)
    with TestClient(app) as client:
        wait_ready(client.get)
        blocker = threading.Event()
        decode = app.state.batcher.translate

        def held(*args):
            blocker.wait(10)
            return decode(*args)

        app.state.batcher.translate = held
        with ThreadPoolExecutor(3) as pool:
            # The worker holds the first request; the second fills the queue; the third is refused.
            answers = [pool.submit(client.post, "/v1/translate", json={"inputs": ["Go."]})]
            time.sleep(0.3)
            answers.append(pool.submit(client.post, "/v1/translate", json={"inputs": ["Hi."]}))
            time.sleep(0.3)
            refused = client.post("/v1/translate", json={"inputs": ["Run!"]})
            blocker.set()
            [answer.result(timeout=30) for answer in answers]

    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    assert "--max-queue" in refused.json()["detail"]


# Attention weights, and warm-up, on a model with attention --------------------------------------


@pytest.fixture(scope="module")
def attention(tiny_attention_dir) -> Translator:
    return Translator.from_dir(tiny_attention_dir)


@pytest.fixture(scope="module")
def attention_client(attention):
    with TestClient(create_app({"att": attention}, ServeSettings(max_batch_size=4))) as client:
        wait_ready(client.get)
        yield client


def test_attention_weights_are_the_models(attention_client, attention):
    texts = ["Hello!", "Go."]  # test_explain checks Translator.attention against the trace
    response = attention_client.post("/v1/translate", json={"inputs": texts, "attention": True})

    assert response.status_code == 200, response.text
    for text, result in zip(texts, response.json()["results"], strict=True):
        weights = result["hypotheses"][0]["attention"]
        source_tokens, output_tokens = weights["source_tokens"], weights["output_tokens"]
        matrix = np.array(weights["weights"])
        vocab = attention.source_vocab
        assert source_tokens == [vocab.itos[i] for i in vocab.encode(text)]
        assert output_tokens[-1] == "</s>"
        assert matrix.shape == (len(output_tokens), len(source_tokens))
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
        [expected] = attention.attention([text], [result["hypotheses"][0]["text"]])
        np.testing.assert_allclose(matrix, np.array(expected.weights), atol=1e-6)


def test_every_beam_hypothesis_gets_its_attention(attention_client, attention):
    request = {"inputs": ["Wait!"], "strategy": "beam", "beam_size": 3, "nbest": 2}
    response = attention_client.post("/v1/translate", json={**request, "attention": True})

    assert response.status_code == 200, response.text
    hypotheses = response.json()["results"][0]["hypotheses"]
    assert len(hypotheses) == 2
    for hypothesis in hypotheses:
        [expected] = attention.attention(["Wait!"], [hypothesis["text"]])
        expected = json.loads(json.dumps(dataclasses.asdict(expected)))
        got = hypothesis["attention"]
        assert {k: got[k] for k in ("source_tokens", "output_tokens")} == {
            k: expected[k] for k in ("source_tokens", "output_tokens")
        }
        # Decoded in batches of other sizes: equal up to float rounding.
        np.testing.assert_allclose(got["weights"], expected["weights"], atol=1e-6)


def test_no_request_compiles_after_warm_up(attention_client):
    traced, listening = [], [True]
    jax.monitoring.register_event_duration_secs_listener(  # stays registered: switched off below
        lambda event, seconds, **_: listening[0] and "trace" in event and traced.append(event)
    )
    inputs = ["Go.", "Hello!", "I see.", "Stop!", "Go on."]
    for count in (1, 2, 3, 4):  # every batch size up to --max-batch-size, sources of all lengths
        for start in (0, 1):
            texts = inputs[start : start + count]
            response = attention_client.post("/v1/translate", json={"inputs": texts})
            assert response.status_code == 200, response.text
    after_greedy = len(traced)
    short = {"inputs": ["Go."], "max_length": 3}  # a setting not warmed up
    assert attention_client.post("/v1/translate", json=short).status_code == 200
    listening[0] = False

    assert after_greedy == 0
    assert len(traced) > 0  # ...does compile, and the listener sees it


# A real server: SIGTERM, and the page in a browser -------------------------------------------------


def wait_until_ready(http: httpx.Client, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode} before it was ready")
        with contextlib.suppress(httpx.TransportError):
            if http.get("/health/ready").status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the server was not ready within {STARTUP_TIMEOUT_S} s")


def test_sigterm_answers_the_requests_in_flight_and_exits_0(tiny_model_dir, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "tandem", "serve", f"tiny={tiny_model_dir}"]
    command += ["--port", str(port), "--max-wait-ms", "1500", "--max-batch-size", "4"]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            wait_until_ready(http, process)
            texts = ["Go.", "Hi.", "Run!", "Wow!"]
            with ThreadPoolExecutor(len(texts)) as pool:
                answers = [
                    pool.submit(http.post, "/v1/translate", json={"inputs": [text]})
                    for text in texts
                ]
                time.sleep(0.5)  # inside the 1.5 s batching window: all four are in flight
                process.send_signal(signal.SIGTERM)
                responses = [answer.result(timeout=60) for answer in answers]
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert [r.status_code for r in responses] == [200] * 4, log.read_text()
    assert [r.json()["results"][0]["source"] for r in responses] == texts
    assert code == 0, log.read_text()


@contextlib.contextmanager
def serving(app):
    """`app` on uvicorn in a thread, on a free loopback port; yields its base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_the_page_translates_in_a_browser_with_a_heatmap(browser, attention, screenshot_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from browser import open_page

    with serving(create_app({"att": attention}, ServeSettings(max_batch_size=2))) as url:
        with httpx.Client(base_url=url, timeout=10) as http:
            wait_until_ready(http)
            answer = http.post("/v1/translate", json={"inputs": ["Go."], "attention": True})
        report = open_page(browser, url + "/", screenshot_path)
        assert report.ok, str(report)
        WebDriverWait(browser, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#model option")
        )
        browser.find_element(By.ID, "text").send_keys("Go.")
        browser.find_element(By.ID, "translate").click()
        WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "#results svg.heatmap")
        )
        shown = browser.find_element(By.CSS_SELECTOR, "#results .translation")
        shown = shown.get_attribute("textContent")
        cells = browser.find_elements(By.CSS_SELECTOR, "#results svg.heatmap rect.cell")
        labels = browser.find_elements(By.CSS_SELECTOR, "#results svg.heatmap text")
        open_page_errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        screenshot_path.write_bytes(browser.get_screenshot_as_png())

    assert not open_page_errors
    assert shown == attention.translate(["Go."])[0]
    weights = answer.json()["results"][0]["hypotheses"][0]["attention"]
    rows, columns = len(weights["output_tokens"]), len(weights["source_tokens"])
    assert len(cells) == rows * columns
    assert len(labels) == rows + columns


# The command line -----------------------------------------------------------------------------


def test_models_are_named_by_folder_or_name(tmp_path):
    from tandem.cli.serve import model_dirs

    assert model_dirs([str(tmp_path / "tiny"), "b=/x/y"]) == {
        "tiny": str(tmp_path / "tiny"),
        "b": "/x/y",
    }


@pytest.mark.parametrize(
    "argv, message",
    [
        (["a=m1", "a=m2"], "two models are named 'a'"),
        (["=m1"], "give MODEL_DIR or NAME=MODEL_DIR"),
        (["m1", "--max-batch-size", "0"], "--max-batch-size must be a positive number"),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(argv, message, capsys):
    from tandem.cli import main

    assert main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err
