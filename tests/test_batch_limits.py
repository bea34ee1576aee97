"""Upload limits on a real uvicorn server: a chunked body (no content-length) over the limit is a 413 like a
declared one (it used to be 422 "error parsing the body", issue 9 defect 6)."""
from __future__ import annotations

import http.client
import json

import pytest
from conftest import serving

BOUNDARY = "xltboundary"
ROW = b"xlm-r-large,xnli,en,sw\n"


@pytest.fixture(scope="module")
def small_server(predictor):
    """uvicorn with a 1 MB body limit on a free loopback port; yields (host, port)."""
    from api.app import create_app

    with serving(create_app(predictor, max_upload_mb=1)) as port:
        yield "127.0.0.1", port


def _multipart_parts(n_rows: int, piece_rows: int = 5_000):
    yield (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.csv\"\r\n"
           f"Content-Type: text/csv\r\n\r\n").encode() + b"model,task,source,target\n"
    for i in range(0, n_rows, piece_rows):
        yield ROW * min(piece_rows, n_rows - i)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def _post_chunked(host, port, n_rows: int) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        try:
            conn.request("POST", "/batch", body=_multipart_parts(n_rows), encode_chunked=True,
                         headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the client has sent everything
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_chunked_upload_over_limit_is_413(small_server):
    status, headers, body = _post_chunked(*small_server, n_rows=80_000)  # ~1.8 MB, no content-length
    assert status == 413, body[:300]
    detail = json.loads(body)["detail"][0]
    assert detail["loc"] == ["body"] and detail["type"] == "too_large"
    assert detail["msg"] == "request body larger than 1 MB"


def test_chunked_upload_under_limit_is_scored(small_server):
    status, _, body = _post_chunked(*small_server, n_rows=3)
    assert status == 200, body[:300]
    lines = body.decode().splitlines()
    assert lines[0] == '"model","task","source","target","predicted_score","error"'
    assert len(lines) == 4 and all(line.endswith(',""') for line in lines[1:])


def test_server_still_serves_after_413(small_server):
    _post_chunked(*small_server, n_rows=80_000)
    conn = http.client.HTTPConnection(*small_server, timeout=30)
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()
