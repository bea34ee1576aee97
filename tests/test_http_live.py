"""The HTTP layer on a real uvicorn server (in a thread, or `xlt serve` as a process): a 500 keeps the keep-alive
connection usable, a stalled upload gets 408, /batch admission refuses before the body is read, and
`xlt serve --workers N` runs N processes that each answer (issue 9)."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import serving as _serving

Q = {"model": "xlm-r-large", "task": "xnli", "target": "sw", "source": "en"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 response read off a raw socket (status, lower-cased headers, body by content-length)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:]))
    n = int(headers.get("content-length", 0))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_500_keeps_the_keep_alive_connection(predictor):
    """Before: Starlette's last-resort handler re-raised after answering, and uvicorn closed the connection without a
    `Connection: close`, so a client reusing it failed. Now the 500 is a finished JSON answer on a live connection."""
    from api.app import create_app

    app = create_app(predictor)

    def boom():
        raise RuntimeError("secret detail")

    async def boom_async(payload: dict):
        raise KeyError("secret key")

    app.add_api_route("/boom", boom, methods=["GET"])
    app.add_api_route("/boom", boom_async, methods=["POST"])
    with _serving(app) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom")
        r = conn.getresponse()
        body = r.read()
        sock = conn.sock
        assert r.status == 500 and r.getheader("content-type") == "application/json"
        assert r.getheader("connection") != "close" and b"secret" not in body and b"Traceback" not in body
        assert json.loads(body)["detail"][0]["type"] == "internal_error"
        conn.request("POST", "/boom", body=json.dumps({"a": 1}), headers={"content-type": "application/json"})
        r = conn.getresponse()
        assert r.status == 500 and b"secret" not in r.read()
        conn.request("GET", "/health")
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
        assert conn.sock is sock  # the same connection served all three
        conn.close()


def test_stalled_upload_gets_408_and_batch_admission_refuses_before_reading(predictor):
    """/batch pool of one, no queue, 1 s read timeout: a client that sends half its body holds the one slot; a second
    upload is refused with 503 + Retry-After before it sends a byte of body; the stalled one gets 408 and its slot
    comes back, so the next upload is scored."""
    from api.app import create_app
    from api.dependencies import PoolLimits

    app = create_app(predictor, read_timeout_s=1.0,
                     limits={"batch": PoolLimits(size=1, queue=0, wait_s=0.1, retry_after=3)})
    csv = b"model,task,source,target\nxlm-r-large,xnli,en,sw\n"
    boundary = "xltboundary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.csv\"\r\n"
            f"Content-Type: text/csv\r\n\r\n").encode() + csv + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /batch HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(form)}\r\n\r\n").encode()
    with _serving(app) as port:
        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.sendall(head + form[:20])
        t_stall = time.perf_counter()
        time.sleep(0.3)
        second = socket.create_connection(("127.0.0.1", port))
        t0 = time.perf_counter()
        second.sendall(head)  # headers only: the answer must not need the body
        status, headers, body = _read_response(second, 5)
        refused_s = time.perf_counter() - t0
        assert status == 503 and headers["retry-after"] == "3" and headers["connection"] == "close", (status, headers)
        assert json.loads(body)["detail"][0]["type"] == "busy" and refused_s < 1, refused_s
        second.close()
        status, headers, body = _read_response(stalled, 10)
        waited = time.perf_counter() - t_stall
        assert status == 408 and headers["connection"] == "close", (status, headers, body)
        assert "not received within 1 s" in json.loads(body)["detail"][0]["msg"] and 0.9 < waited < 5, waited
        stalled.close()
        third = socket.create_connection(("127.0.0.1", port))
        third.sendall(head + form)
        status, headers, body = _read_response(third, 60)
        third.close()
        assert status == 200 and headers["content-type"].startswith("text/csv"), (status, body[:200])
        deadline = time.time() + 5  # the slot is given back when the ASGI call returns, just after the last byte
        while app.state.pools["batch"].admitted and time.time() < deadline:
            time.sleep(0.05)
        assert app.state.pools["batch"].admitted == 0


def test_chunked_upload_over_the_limit_is_413_json(predictor):
    """A body without content-length (chunked) that passes the limit: 413 JSON, not 422 'error parsing the body'."""
    from api.app import create_app

    with _serving(create_app(predictor, max_upload_mb=0.01)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)

        def chunks():  # a well-formed multipart start, so the parser keeps reading until the limit stops it
            yield b'--x\r\ncontent-disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
            for _ in range(40):
                yield b"model,task,source,target\n" * 40

        conn.request("POST", "/batch", body=chunks(), encode_chunked=True,
                     headers={"content-type": "multipart/form-data; boundary=x", "transfer-encoding": "chunked"})
        r = conn.getresponse()
        body = r.read()
        conn.close()
    assert r.status == 413 and r.getheader("content-type") == "application/json", (r.status, body[:200])
    assert "larger than" in json.loads(body)["detail"][0]["msg"]


# ------------------------------------------------------------------------------------------------ xlt serve
def _xlt() -> list[str]:
    exe = Path(sys.executable).parent / "xlt"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "api.cli"]


def test_xlt_serve_runs_n_worker_processes(tmp_path):
    psutil = pytest.importorskip("psutil")
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")
    p = subprocess.Popen([*_xlt(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    status, headers = r.status, r.headers
                break
            except OSError:
                time.sleep(0.3)
        log.seek(0)
        assert status == 200, log.read()[-500:]
        assert "server" not in {k.lower() for k in headers}  # no server banner
        workers = [c for c in psutil.Process(p.pid).children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        assert len(workers) == 2, [c.cmdline() for c in psutil.Process(p.pid).children(recursive=True)]
        # both workers loaded the model: enough requests land on each of them
        for _ in range(10):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=json.dumps(Q).encode(),
                                         headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                assert r.status == 200
        log.seek(0)
        assert "with 2 workers" in log.read()
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(30)
        log.close()


def test_xlt_serve_refuses_zero_workers():
    r = subprocess.run([*_xlt(), "serve", "--workers", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--workers must be >= 1" in r.stderr
