"""Requests whose client goes away while they wait in the queue are dropped
unrun: an HTTP connection closed by the client, a gRPC call cancelled (here
by its deadline). They count as failures with reason CANCELED, as Triton's
nv_inference_request_failure labels them."""
import json
import os
import socket
import time
import urllib.request

import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi

# A batch goes only when 8 rows wait or after 3 s: the test's requests sit in
# the queue meanwhile.
CONFIG = """max_batch_size: 8
dynamic_batching { preferred_batch_size: [ 8 ] max_queue_delay_microseconds: 3000000 }
"""


@pytest.fixture(scope="module")
def slow_server(workdir):
    root = os.path.join(workdir, "repo_disconnect")
    for name in ("held_http", "held_grpc"):
        save_model(os.path.join(root, name, "1", "model.onnx"), [helper.make_node("Neg", ["x"], ["y"])],
                   [vi("x", TensorProto.FLOAT, ["batch", 4])], [vi("y", TensorProto.FLOAT, ["batch", 4])])
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write(CONFIG)
    s = KilnServer(["--model-repository", root], os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)


def stats(server, model):
    url = f"http://127.0.0.1:{server.http_port}/v2/models/{model}/stats"
    return json.loads(urllib.request.urlopen(url, timeout=10).read())["model_stats"][0]


def metrics(server):
    return urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()


def wait_for(predicate, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def send_and_close(server, model, count):
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    request = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n{body}").encode()
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
        s.sendall(request)
        socks.append(s)
    time.sleep(0.3)  # queued, waiting for the batch to fill
    for s in socks:
        s.close()


def test_disconnected_clients_requests_are_dropped_from_the_queue(slow_server):
    start = time.monotonic()
    send_and_close(slow_server, "held_http", 3)
    grpc_cancelled = slow_server.grpc_url is not None
    if grpc_cancelled:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
        client = grpcclient.InferenceServerClient(url=slow_server.grpc_url)
        x = grpcclient.InferInput("x", [1, 4], "FP32")
        x.set_data_from_numpy(np.ones((1, 4), np.float32))
        with pytest.raises(InferenceServerException, match="(?i)deadline"):
            client.infer("held_grpc", [x], client_timeout=0.3)
        client.close()

    # Dropped as soon as the client is gone, not when the batch would have gone.
    def failed(model, n):
        return stats(slow_server, model)["inference_stats"]["fail"]["count"] == n

    assert wait_for(lambda: failed("held_http", 3), 2.0), stats(slow_server, "held_http")
    if grpc_cancelled:
        assert wait_for(lambda: failed("held_grpc", 1), 2.0), stats(slow_server, "held_grpc")
    assert time.monotonic() - start < 2.9
    # Past the queue delay: nothing ran.
    time.sleep(max(0.0, 3.5 - (time.monotonic() - start)))
    for model in ("held_http", "held_grpc"):
        st = stats(slow_server, model)
        assert st["execution_count"] == 0 and st["inference_count"] == 0, st
        assert st["inference_stats"]["success"]["count"] == 0
    body = metrics(slow_server)
    assert 'nv_inference_request_failure{model="held_http",reason="CANCELED",version="1"} 3' in body
    assert 'nv_inference_request_failure{model="held_http",reason="REJECTED",version="1"} 0' in body
    if grpc_cancelled:
        assert 'nv_inference_request_failure{model="held_grpc",reason="CANCELED",version="1"} 1' in body


def test_a_connected_client_is_still_answered(slow_server):
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    req = urllib.request.Request(f"http://127.0.0.1:{slow_server.http_port}/v2/models/held_http/infer",
                                 data=body.encode(), method="POST")
    out = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert out["outputs"][0]["data"] == [-1, -2, -3, -4]
    assert stats(slow_server, "held_http")["execution_count"] == 1
