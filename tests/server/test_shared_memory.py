"""Triton's system shared memory extension in kiln serve, over HTTP and gRPC,
with the regions made by tritonclient.utils.shared_memory."""
import json
import os
import queue
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

PROTOCOLS = ["http", "grpc"]


class Api:
    """The same calls over either protocol (tritonclient's two modules)."""

    def __init__(self, server, protocol):
        if protocol == "grpc" and server.grpc_url is None:
            pytest.skip("this kiln was built without gRPC")
        self.protocol = protocol
        self.mod = httpclient if protocol == "http" else grpcclient
        self.client = self.mod.InferenceServerClient(url=server.url if protocol == "http" else server.grpc_url)

    def status(self, name=""):
        s = self.client.get_system_shared_memory_status(name)
        if self.protocol == "http":
            return sorted((r["name"], r["key"], int(r["offset"]), int(r["byte_size"])) for r in s)
        return sorted((r.name, r.key, r.offset, r.byte_size) for r in s.regions.values())

    def input(self, name, shape, region, byte_size, offset=0):
        i = self.mod.InferInput(name, list(shape), "FP32")
        i.set_shared_memory(region, byte_size, offset)
        return i

    def data_input(self, name, a):
        i = self.mod.InferInput(name, list(a.shape), "FP32")
        i.set_data_from_numpy(a)
        return i

    def output(self, name, region=None, byte_size=0, offset=0):
        o = self.mod.InferRequestedOutput(name)
        if region:
            o.set_shared_memory(region, byte_size, offset)
        return o


@pytest.fixture(params=PROTOCOLS)
def api(request, server):
    a = Api(server, request.param)
    a.client.unregister_system_shared_memory()
    yield a
    a.client.unregister_system_shared_memory()
    a.client.close()


@pytest.fixture
def regions():
    """Makes regions (unique keys) and destroys them after the test."""
    made = []

    def make(name, size):
        h = shm.create_shared_memory_region(name, f"/kiln_test_{os.getpid()}_{name}", size)
        made.append(h)
        return h

    yield make
    for h in made:
        shm.destroy_shared_memory_region(h)


def key_of(name):
    return f"/kiln_test_{os.getpid()}_{name}"


def error_of(call):
    with pytest.raises(InferenceServerException) as e:
        call()
    return e.value


def test_register_status_unregister(api, regions):
    regions("a", 64)
    regions("b", 4096)
    api.client.register_system_shared_memory("a", key_of("a"), 64)
    api.client.register_system_shared_memory("b", key_of("b"), 100, offset=16)
    assert api.status() == [("a", key_of("a"), 0, 64), ("b", key_of("b"), 16, 100)]
    assert api.status("b") == [("b", key_of("b"), 16, 100)]
    api.client.unregister_system_shared_memory("a")
    assert api.status() == [("b", key_of("b"), 16, 100)]
    api.client.unregister_system_shared_memory()
    assert api.status() == []


def test_server_metadata_names_the_extension(api):
    md = api.client.get_server_metadata()
    extensions = md["extensions"] if api.protocol == "http" else list(md.extensions)
    assert "system_shared_memory" in extensions


def test_register_errors(api, regions):
    regions("r", 64)
    api.client.register_system_shared_memory("r", key_of("r"), 64)
    e = error_of(lambda: api.client.register_system_shared_memory("r", key_of("r"), 64))
    assert "shared memory region 'r' is already registered" in e.message()
    assert e.status() == ("400" if api.protocol == "http" else "StatusCode.ALREADY_EXISTS")
    e = error_of(lambda: api.client.register_system_shared_memory("x", "/kiln_test_no_such_key", 64))
    assert ("failed to register shared memory region 'x': unable to open the shared memory object "
            "'/kiln_test_no_such_key': No such file or directory") in e.message()
    assert e.status() == ("400" if api.protocol == "http" else "StatusCode.INVALID_ARGUMENT")
    e = error_of(lambda: api.client.register_system_shared_memory("x", key_of("r"), 60, offset=8))
    assert ("failed to register shared memory region 'x': offset 8 + byte_size 60 runs past the end of '" +
            key_of("r") + "' (64 bytes)") in e.message()
    e = error_of(lambda: api.client.register_system_shared_memory("x", key_of("r"), 1, offset=65))
    assert "offset 65 + byte_size 1 runs past the end" in e.message()
    assert api.status() == [("r", key_of("r"), 0, 64)]


def test_unknown_region_on_status_and_unregister(api, regions):
    e = error_of(lambda: api.status("nope"))
    assert "unable to find shared memory region 'nope'" in e.message()
    assert e.status() == ("404" if api.protocol == "http" else "StatusCode.NOT_FOUND")
    # As Triton: unregistering a name that is not registered does nothing.
    regions("kept", 16)
    api.client.register_system_shared_memory("kept", key_of("kept"), 16)
    api.client.unregister_system_shared_memory("nope")
    assert api.status() == [("kept", key_of("kept"), 0, 16)]


def test_cuda_shared_memory_is_not_supported(api):
    e = error_of(lambda: api.client.get_cuda_shared_memory_status())
    assert "CUDA shared memory is not supported by kiln serve" in e.message()
    assert e.status() == ("501" if api.protocol == "http" else "StatusCode.UNIMPLEMENTED")


def test_infer_inputs_and_outputs_in_shared_memory(api, regions):
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, dtype=np.float32)
    h_in = regions("in", 2 * 32 + 8)
    h_out = regions("out", 2 * 32 + 16)
    # INPUT1 at offset 36: a window that is not 16-byte aligned.
    shm.set_shared_memory_region(h_in, [a])
    shm.set_shared_memory_region(h_in, [b], offset=36)
    api.client.register_system_shared_memory("in", key_of("in"), 72)
    api.client.register_system_shared_memory("out", key_of("out"), 80)
    inputs = [api.input("INPUT0", a.shape, "in", 32), api.input("INPUT1", b.shape, "in", 32, offset=36)]
    outputs = [api.output("OUTPUT0", "out", 40), api.output("OUTPUT1", "out", 32, offset=48)]
    r = api.client.infer("add_sub", inputs, outputs=outputs)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.float32, [2, 4]), a + b)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.float32, [2, 4], offset=48), a - b)
    out0 = r.get_output("OUTPUT0")
    if api.protocol == "http":
        assert out0 == {"name": "OUTPUT0", "datatype": "FP32", "shape": [2, 4],
                        "parameters": {"shared_memory_region": "out", "shared_memory_byte_size": 32}}
        assert r.get_output("OUTPUT1")["parameters"] == {
            "shared_memory_region": "out", "shared_memory_byte_size": 32, "shared_memory_offset": 48}
    else:
        assert out0.parameters["shared_memory_region"].string_param == "out"
        assert out0.parameters["shared_memory_byte_size"].int64_param == 32
        assert list(out0.shape) == [2, 4]
        assert list(r.get_response().raw_output_contents) == [b"", b""]
    # The same results as without shared memory.
    plain = api.client.infer("add_sub", [api.data_input("INPUT0", a), api.data_input("INPUT1", b)])
    np.testing.assert_array_equal(plain.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(plain.as_numpy("OUTPUT1"), a - b)


def test_one_input_in_shared_memory_one_not(api, regions):
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.ones((1, 4), dtype=np.float32)
    h = regions("half", 16)
    shm.set_shared_memory_region(h, [b])
    api.client.register_system_shared_memory("half", key_of("half"), 16)
    r = api.client.infer("add_sub", [api.data_input("INPUT0", a), api.input("INPUT1", b.shape, "half", 16)])
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)


def test_infer_errors(api, regions):
    a = np.zeros((1, 4), dtype=np.float32)
    h = regions("e", 32)
    shm.set_shared_memory_region(h, [a])
    api.client.register_system_shared_memory("e", key_of("e"), 32)
    plain = api.data_input("INPUT1", a)

    def infer(i0, outputs=None):
        return error_of(lambda: api.client.infer("add_sub", [i0, plain], outputs=outputs))

    e = infer(api.input("INPUT0", a.shape, "nope", 16))
    assert "input 'INPUT0': unable to find shared memory region 'nope'" in e.message()
    assert e.status() == ("400" if api.protocol == "http" else "StatusCode.INVALID_ARGUMENT")
    e = infer(api.input("INPUT0", a.shape, "e", 16, offset=24))
    assert ("input 'INPUT0': shared_memory_offset 24 + shared_memory_byte_size 16 runs past the end of shared "
            "memory region 'e' (32 bytes)") in e.message()
    e = infer(api.input("INPUT0", a.shape, "e", 12))
    assert "input 'INPUT0': shared_memory_byte_size 12 but the shape and datatype need 16 bytes" in e.message()
    e = infer(api.data_input("INPUT0", a), outputs=[api.output("OUTPUT0", "e", 8)])
    assert "output 'OUTPUT0': shared_memory_byte_size 8 is too small for its 16 bytes" in e.message()
    e = infer(api.data_input("INPUT0", a), outputs=[api.output("OUTPUT0", "nope", 16)])
    assert "output 'OUTPUT0': unable to find shared memory region 'nope'" in e.message()


def post(server, path, body):
    req = urllib.request.Request(f"http://{server.url}{path}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["error"]


def test_http_request_shape_errors(server, regions):
    regions("j", 16)
    Api(server, "http").client.register_system_shared_memory("j", key_of("j"), 16)
    tensor = {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4]}
    other = {"name": "INPUT1", "datatype": "FP32", "shape": [1, 4], "data": [0, 0, 0, 0]}
    both = dict(tensor, data=[1, 2, 3, 4],
                parameters={"shared_memory_region": "j", "shared_memory_byte_size": 16})
    assert post(server, "/v2/models/add_sub/infer", {"inputs": [both, other]}) == (
        400, "input 'INPUT0': has both 'data' and shared memory parameters")
    half = dict(tensor, parameters={"shared_memory_region": "j"})
    assert post(server, "/v2/models/add_sub/infer", {"inputs": [half, other]}) == (
        400, "input 'INPUT0': shared memory needs both 'shared_memory_region' and 'shared_memory_byte_size'")
    assert post(server, "/v2/systemsharedmemory/region/k/register", {"key": key_of("j")}) == (
        400, "'byte_size' must be a non-negative integer")
    assert post(server, "/v2/systemsharedmemory/region/k/register", {"key": key_of("j"), "byte_size": 0}) == (
        400, "failed to register shared memory region 'k': byte_size is 0")
    Api(server, "http").client.unregister_system_shared_memory()


def test_unregister_while_a_request_uses_the_region(server, regions):
    # 'batcher' holds a request up to 200 ms for more: the region is
    # unregistered meanwhile and the request still reads it.
    api = Api(server, "http")
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.full((1, 4), 2, dtype=np.float32)
    h = regions("busy", 32)
    shm.set_shared_memory_region(h, [a, b])
    api.client.register_system_shared_memory("busy", key_of("busy"), 32)
    body = {"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [1, 4],
         "parameters": {"shared_memory_region": "busy", "shared_memory_byte_size": 16}},
        {"name": "INPUT1", "datatype": "FP32", "shape": [1, 4],
         "parameters": {"shared_memory_region": "busy", "shared_memory_byte_size": 16, "shared_memory_offset": 16}}]}
    result = {}
    t = threading.Thread(target=lambda: result.update(r=post(server, "/v2/models/batcher/infer", body)))
    started = time.monotonic()
    t.start()
    time.sleep(0.05)
    api.client.unregister_system_shared_memory("busy")
    assert api.status() == []
    t.join(30)
    assert time.monotonic() - started > 0.1  # the request was held while the region went
    status, text = result["r"]
    assert status == 200, text
    outputs = {o["name"]: o["data"] for o in json.loads(text)["outputs"]}
    assert outputs == {"OUTPUT0": (a + b).ravel().tolist(), "OUTPUT1": (a - b).ravel().tolist()}


def test_grpc_stream_with_shared_memory(server, regions):
    api = Api(server, "grpc")
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.full((1, 4), 3, dtype=np.float32)
    h_in = regions("sin", 32)
    h_out = regions("sout", 64)
    shm.set_shared_memory_region(h_in, [a, b])
    api.client.register_system_shared_memory("sin", key_of("sin"), 32)
    api.client.register_system_shared_memory("sout", key_of("sout"), 64)
    results = queue.Queue()
    api.client.start_stream(callback=lambda result, error: results.put((result, error)), stream_timeout=60)
    try:
        api.client.async_stream_infer(
            "add_sub", [api.input("INPUT0", a.shape, "sin", 16), api.input("INPUT1", b.shape, "sin", 16, offset=16)],
            outputs=[api.output("OUTPUT0", "sout", 16), api.output("OUTPUT1", "sout", 16, offset=32)])
        # Too small an output window: an error for this request only.
        api.client.async_stream_infer(
            "add_sub", [api.input("INPUT0", a.shape, "sin", 16), api.input("INPUT1", b.shape, "sin", 16, offset=16)],
            outputs=[api.output("OUTPUT0", "sout", 8)], request_id="small")
        got = [results.get(timeout=30) for _ in range(2)]
    finally:
        api.client.stop_stream()
        api.client.unregister_system_shared_memory()
        api.client.close()
    errors = [e for r, e in got if e is not None]
    assert len(errors) == 1 and "shared_memory_byte_size 8 is too small for its 16 bytes" in errors[0].message()
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.float32, [1, 4]), a + b)
    np.testing.assert_array_equal(shm.get_contents_as_numpy(h_out, np.float32, [1, 4], offset=32), a - b)
