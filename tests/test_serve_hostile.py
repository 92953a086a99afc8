"""`tandem serve` against hostile clients: fuzzed bodies, bytes, slow and dropped connections, a flood.

One real server (a subprocess on a free loopback port) takes every class in turn; after each, a
correct request must still get `Translator.translate`'s answer, and at the end its memory must
be flat. Each class records its cases and outcomes in TRIED, printed at the end (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import free_port
from tandem.config.decode import MAX_ALPHA, MAX_BEAM, MAX_DECODE_LENGTH
from tandem.translator import Translator

SRC = Path(__file__).resolve().parents[1] / "src"
STARTUP_TIMEOUT_S = 180.0
MAX_BODY_BYTES = 2_000
MAX_QUEUE = 2
FLAGS = ["--max-body-bytes", str(MAX_BODY_BYTES), "--max-queue", str(MAX_QUEUE)]
FLAGS += ["--max-inputs", "4", "--max-input-chars", "50", "--max-batch-size", "4"]
FLAGS += ["--decode-timeout-s", "10"]
MAX_BEAM_SIZE, MAX_LENGTH = 16, 256  # the defaults of --max-beam-size and --max-decode-length
FLAGS += ["--max-beam-size", str(MAX_BEAM_SIZE), "--max-decode-length", str(MAX_LENGTH)]
SCHEMATHESIS_CASES = 150  # for /v1/translate, half positive, half negative, within the budget
SCHEMATHESIS_BUDGET_S = 25.0
CHECK_TEXTS = ["Go.", "Hi.", "Run!"]
TRIED: dict[str, tuple[int, Counter]] = {}  # class -> (cases, outcomes)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Server:
    """The subprocess server, its httpx client and the answers a correct request must get."""

    def __init__(self, process: subprocess.Popen, port: int, expected: list[str]):
        self.process, self.port, self.expected = process, port, expected
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.rss_before_mb = 0.0

    def assert_correct(self) -> None:
        """A correct request gets the translator's answer (retrying 503s for at most 30 s)."""
        deadline = time.monotonic() + 30
        while True:
            response = self.http.post("/v1/translate", json={"inputs": CHECK_TEXTS})
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert response.status_code == 200, response.text
        texts = [r["hypotheses"][0]["text"] for r in response.json()["results"]]
        assert texts == self.expected
        assert self.process.poll() is None


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    expected = Translator.from_dir(tiny_model_dir).translate(CHECK_TEXTS)
    port = free_port()
    log = tmp_path_factory.mktemp("hostile") / "serve.log"
    command = [sys.executable, "-m", "tandem", "serve", f"tiny={tiny_model_dir}"]
    command += ["--port", str(port), *FLAGS]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = Server(process, port, expected)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the server was not ready in time"
            with contextlib.suppress(httpx.TransportError):
                if server.http.get("/health/ready").status_code == 200:
                    break
            time.sleep(0.2)
        for _ in range(20):  # warm-up: the memory baseline is taken after it
            server.assert_correct()
        # A setting not warmed up compiles, and the compiler's memory stays with the process:
        # the baseline holds it, whether the warm-up compiled or read JAX's cache.
        beam = {"inputs": ["Go."], "strategy": "beam", "beam_size": 3, "alpha": 0.3}
        assert server.http.post("/v1/translate", json=beam).status_code == 200
        server.rss_before_mb = rss_mb(process.pid)
        yield server
        assert "Traceback" not in log.read_text(), log.read_text()
    finally:
        server.http.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print_tried()


def print_tried() -> None:
    print("\n| class | cases | outcome |\n| --- | --- | --- |")
    for name, (cases, outcomes) in TRIED.items():
        outcome = ", ".join(f"{count} x {status}" for status, count in sorted(outcomes.items()))
        print(f"| {name} | {cases} | {outcome} |")


def record(name: str, outcome) -> None:
    cases, outcomes = TRIED.get(name, (0, Counter()))
    outcomes[outcome] += 1
    TRIED[name] = (cases + 1, outcomes)


def assert_answer_is_sound(response: httpx.Response) -> None:
    """2xx or 4xx, or 501/503/504 as documented; always with a JSON body."""
    status = response.status_code
    assert 200 <= status < 300 or 400 <= status < 500 or status in (501, 503, 504), response.text
    assert isinstance(response.json(), dict)
    if status == 503:
        assert response.headers["retry-after"] == "1"


# 1. Bodies generated from the request schema -----------------------------------------------------

WRONG = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
TEXTS = st.one_of(
    st.text(max_size=60),  # unicode of every category, across the 50-character limit
    st.sampled_from(["", " ", "\x00", "\ud800", "🙂" * 50, "a" * 51, "Go."]),
)
FIELDS = {
    "model": st.one_of(st.sampled_from(["tiny", "", "other"]), WRONG),
    "inputs": st.one_of(st.lists(TEXTS, max_size=6), WRONG),
    "strategy": st.one_of(st.sampled_from(["greedy", "beam", "sample", "GREEDY", ""]), WRONG),
    "beam_size": st.one_of(st.sampled_from([1, 2, 0, -1, MAX_BEAM + 1, 2**63]), WRONG),
    "nbest": st.one_of(st.sampled_from([1, 2, 0, -1, 2**63]), WRONG),
    "alpha": st.one_of(st.sampled_from([0.0, 0.5, -0.1, MAX_ALPHA, 1e308, -0.0]), WRONG),
    "max_length": st.one_of(st.sampled_from([1, 3, 0, -1, MAX_DECODE_LENGTH + 1]), WRONG),
    "attention": st.one_of(st.booleans(), WRONG),
}
BODIES = st.fixed_dictionaries(
    {}, optional={**FIELDS, "extra": WRONG, "": WRONG}
) | st.fixed_dictionaries(
    {"inputs": st.lists(TEXTS, min_size=1, max_size=4)},
    optional={name: value for name, value in FIELDS.items() if name != "inputs"},
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(body=BODIES)
def test_bodies_from_the_schema_get_sound_answers(server, body):
    # Python's json writes NaN and Infinity, which are not JSON: the server must refuse them too.
    content = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    response = server.http.post(
        "/v1/translate", content=content, headers={"content-type": "application/json"}
    )
    record("schema-generated bodies (hypothesis)", response.status_code)
    assert_answer_is_sound(response)


def test_the_schema_covers_the_fields_fuzzed(server):
    schema = server.http.get("/openapi.json").json()["components"]["schemas"]["TranslateRequest"]
    assert set(schema["properties"]) == set(FIELDS)
    server.assert_correct()


# 1b. Cases schemathesis draws from the OpenAPI document ---------------------------------------


def test_schemathesis_cases_get_no_5xx_and_answers_that_match_the_schema(server):
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    base_url = f"http://127.0.0.1:{server.port}"
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    deadline = time.monotonic() + SCHEMATHESIS_BUDGET_S
    checks = [not_a_server_error, response_schema_conformance]
    name = "schemathesis cases from /openapi.json (positive and negative)"
    for operation in operations:
        for mode in schemathesis.GenerationMode:

            @settings(
                max_examples=SCHEMATHESIS_CASES // 2,  # a GET without parameters has one
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                if time.monotonic() > deadline:
                    return  # the budget is spent: the remaining examples send nothing
                response = case.call(base_url=base_url, timeout=30)
                record(name, response.status_code)
                case.validate_response(response, checks=checks)

            with contextlib.suppress(Unsatisfiable):  # nothing negative in a parameterless GET
                call()
    server.assert_correct()


# 2. Bytes that are not a request body -----------------------------------------------------------

CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
FIXED_BYTES = [
    b'{"inputs": ["\xff\xfe"]}',  # invalid UTF-8
    b'{"inputs": ["Go."',  # truncated
    b'{"inputs": ["Go."]}\x00',
    b"[]",
    b"null",
    b'"inputs"',
    b"",
    b"\xef\xbb\xbf" + b'{"inputs": ["Go."]}',  # a byte-order mark
    b'{"inputs": ["Go."], "inputs": 1}',
    b"[" * 1_000 + b"]" * 1_000,
]


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
@given(
    body=st.one_of(st.binary(max_size=300), st.sampled_from(FIXED_BYTES)),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_bytes_get_4xx(server, body, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = server.http.post("/v1/translate", content=body, headers=headers)
    record("random and broken bytes", response.status_code)
    assert_answer_is_sound(response)
    assert response.status_code != 200 or b'"inputs"' in body


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b'{"inputs": ["\\ud800"]}', "application/json"),  # a lone surrogate: was 500
        (b'{"inputs": ["Go."], "max_length": Infinity}', "application/json"),  # was 500
        (b'{"inputs": ["Go."], "alpha": NaN}', "application/json"),  # was 500
        (b"\x80", "text/plain"),  # bytes that are not UTF-8, echoed in the 422: was 500
    ],
)
def test_what_fuzzing_found_is_422(server, body, content_type):
    response = server.http.post(
        "/v1/translate", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], list | str)


def test_still_correct_after_bytes(server):
    server.assert_correct()


# 3. Bodies at the size limit, over a real socket -------------------------------------------------


def test_bodies_just_under_and_over_the_size_limit(server):
    valid = json.dumps({"inputs": ["Go."]}).encode()
    cases = [(MAX_BODY_BYTES - 1, 200), (MAX_BODY_BYTES, 200), (MAX_BODY_BYTES + 1, 413)]
    for size, status in cases:
        body = valid + b" " * (size - len(valid))
        response = server.http.post(
            "/v1/translate", content=body, headers={"content-type": "application/json"}
        )
        record("bodies at the size limit", response.status_code)
        assert response.status_code == status, response.text
    chunked = iter([valid, b" " * MAX_BODY_BYTES])  # no Content-Length
    response = server.http.post(
        "/v1/translate", content=chunked, headers={"content-type": "application/json"}
    )
    record("bodies at the size limit", response.status_code)
    assert response.status_code == 413
    server.assert_correct()


# 4. Slow and dropped connections -----------------------------------------------------------------


def raw_request(texts: list[str]) -> bytes:
    body = json.dumps({"inputs": texts}).encode()
    head = "POST /v1/translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def slow_client(port: int) -> str:
    """Sends a correct request a few bytes every 50 ms (at most ~1 s), then reads the answer."""
    request = raw_request(["Go."])
    step = -(-len(request) // 20)  # 20 sends
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        for start in range(0, len(request), step):
            connection.sendall(request[start : start + step])
            time.sleep(0.05)
        answer = b""
        while chunk := connection.recv(65_536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def dropped_client(port: int, number: int) -> str:
    """Connects, sends part of a request (none, headers, or half a body), and closes."""
    request = raw_request(["Go."])
    cut = [0, request.index(b"\r\n\r\n") // 2, len(request) - 5][number % 3]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(request[:cut])
    return f"closed after {cut} bytes"


def test_slow_and_dropped_clients(server):
    with ThreadPoolExecutor(12) as pool:
        slow = list(pool.map(slow_client, [server.port] * 12))
    for status_line in slow:
        record("slow clients (20 sends, 50 ms apart)", status_line)
    # Twelve requests completing at once overflow --max-queue 2: 503 is the documented answer.
    assert set(slow) <= {"HTTP/1.1 200 OK", "HTTP/1.1 503 Service Unavailable"}, slow
    for number in range(12):
        record("dropped connections", dropped_client(server.port, number))
    server.assert_correct()


# 5. A flood past the queue ------------------------------------------------------------------------


def test_a_flood_past_the_queue_gets_503s_and_no_500(server):
    texts = [CHECK_TEXTS[number % 3] for number in range(200)]
    limits = httpx.Limits(max_connections=64)
    http = httpx.Client(base_url=server.http.base_url, timeout=10, limits=limits)
    with http, ThreadPoolExecutor(64) as pool:
        responses = list(
            pool.map(lambda text: http.post("/v1/translate", json={"inputs": [text]}), texts)
        )
    for response in responses:
        record("flood: 200 requests, 64 at once, --max-queue 2", response.status_code)
        assert_answer_is_sound(response)
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0, statuses
    answered = {text: r for text, r in zip(texts, responses, strict=True) if r.status_code == 200}
    for text, response in answered.items():
        expected = server.expected[CHECK_TEXTS.index(text)]
        assert response.json()["results"][0]["hypotheses"][0]["text"] == expected
    server.assert_correct()


# 6. The biggest decodes inside the limits, and just over them ----------------------------------


def test_the_biggest_decode_within_the_limits_is_answered_and_the_worker_moves_on(server):
    biggest = {
        "inputs": ["w" * 50] * 4,  # --max-inputs texts of --max-input-chars characters
        "strategy": "beam",
        "beam_size": MAX_BEAM_SIZE,
        "nbest": MAX_BEAM_SIZE,
        "max_length": MAX_LENGTH,
    }
    response = server.http.post("/v1/translate", json=biggest)
    record("the biggest decode the limits allow", response.status_code)
    assert response.status_code in (200, 504), response.text
    server.assert_correct()  # the worker is not held for minutes afterwards


@pytest.mark.parametrize(
    "field, value, flag",
    [
        ("beam_size", MAX_BEAM_SIZE + 1, "--max-beam-size"),
        ("max_length", MAX_LENGTH + 1, "--max-decode-length"),
    ],
)
def test_a_decode_just_over_the_limits_is_422_naming_them(server, field, value, flag):
    body = {"inputs": ["Go."], field: value}
    if field == "beam_size":
        body["strategy"] = "beam"
    response = server.http.post("/v1/translate", json=body)
    record("decodes just over --max-beam-size or --max-decode-length", response.status_code)
    assert response.status_code == 422, response.text
    assert flag in response.json()["detail"]


# 7. Memory, after all the above ------------------------------------------------------------------


def test_memory_stays_flat(server):
    after = rss_mb(server.process.pid)
    TRIED["server RSS (MB), after warm-up -> after all classes"] = (
        1,
        Counter({f"{server.rss_before_mb:.0f} -> {after:.0f}": 1}),
    )
    assert after < server.rss_before_mb + 100, (server.rss_before_mb, after)
    server.assert_correct()
