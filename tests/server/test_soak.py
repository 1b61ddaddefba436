"""Soak: 20,000 HTTP infer requests at concurrency 64 on loopback end with
zero errors and flat memory (the server's RSS after the soak within a small
bound of its RSS after a 2,000-request warm-up). A small asyncio load
generator with keep-alive connections keeps the client off the 2 cores'
critical path; each phase opens its connections anew (the server's
per-connection threads come and go)."""
import asyncio
import http.client
import json
import os
import time
import urllib.request

from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi

CONCURRENCY = 64
WARMUP = 2000
SOAK = 20000
RSS_BOUND_KB = 8 * 1024


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def worker(port, request, expected, count, errors):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200") or body != expected:
                errors.append((head[:40], body[:200]))
    finally:
        writer.close()


async def load(port, request, expected, total):
    errors = []
    per = total // CONCURRENCY
    counts = [per + (1 if i < total - per * CONCURRENCY else 0) for i in range(CONCURRENCY)]
    await asyncio.gather(*(worker(port, request, expected, n, errors) for n in counts))
    return errors


def test_soak_zero_errors_and_flat_memory(workdir):
    root = os.path.join(workdir, "repo_soak")
    save_model(os.path.join(root, "tiny", "1", "model.onnx"), [helper.make_node("Neg", ["x"], ["y"])],
               [vi("x", TensorProto.FLOAT, ["batch", 4])], [vi("y", TensorProto.FLOAT, ["batch", 4])])
    with open(os.path.join(root, "tiny", "config.pbtxt"), "w") as f:
        f.write("max_batch_size: 64\ninstance_group [ { count: 2 } ]\ndynamic_batching { }\n")
    server = KilnServer(["--model-repository", root], os.path.join(workdir, "cache"))
    try:
        body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
        request = (f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
        c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        c.request("POST", "/v2/models/tiny/infer", body=body)
        expected = c.getresponse().read()
        c.close()
        assert json.loads(expected)["outputs"][0]["data"] == [-1, -2, -3, -4]
        pid = server.proc.pid
        t0 = time.monotonic()
        errors = asyncio.run(load(server.http_port, request, expected, WARMUP))
        assert not errors, errors[:3]
        rss_warm = rss_kb(pid)
        t1 = time.monotonic()
        errors = asyncio.run(load(server.http_port, request, expected, SOAK))
        t2 = time.monotonic()
        assert not errors, (len(errors), errors[:3])
        rss_after = rss_kb(pid)
        print(f"\nsoak: warm-up {WARMUP} requests in {t1 - t0:.1f} s; {SOAK} requests at concurrency {CONCURRENCY} "
              f"in {t2 - t1:.1f} s ({SOAK / (t2 - t1):.0f}/s); VmRSS {rss_warm} kB after warm-up, "
              f"{rss_after} kB after the soak")
        stats = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{server.http_port}/v2/models/tiny/stats", timeout=10).read())["model_stats"][0]
        assert stats["inference_stats"]["success"]["count"] == 1 + WARMUP + SOAK
        assert stats["inference_stats"]["fail"]["count"] == 0
        assert rss_after - rss_warm < RSS_BOUND_KB, (rss_warm, rss_after)
    finally:
        assert server.stop() == 0, "".join(server.log)
