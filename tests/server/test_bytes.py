"""BYTES (string) tensors over HTTP (JSON and binary data) and gRPC
(raw_input_contents and bytes_contents), in and out, batched together by the
dynamic batcher; malformed serialized data is a precise error."""
import http.client
import json
import os
import struct

import numpy as np
import pytest
import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi

S = TensorProto.STRING


@pytest.fixture(scope="module")
def bytes_server(workdir):
    root = os.path.join(workdir, "repo_bytes")
    # Completed from the model: a batch dim, so max_batch_size 8 with dynamic batching.
    save_model(os.path.join(root, "str_identity", "1", "model.onnx"),
               [helper.make_node("Identity", ["text"], ["text_out"])],
               [vi("text", S, ["batch", 2])], [vi("text_out", S, ["batch", 2])])
    # An output whose shape is known only while running (an output allocator).
    save_model(os.path.join(root, "str_upper", "1", "model.onnx"),
               [helper.make_node("StringNormalizer", ["words"], ["upper"], case_change_action="UPPER",
                                 stopwords=["the"])],
               [vi("words", S, [1, "n"])], [vi("upper", S, [1, "m"])])
    s = KilnServer(["--model-repository", root], os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)


@pytest.fixture(scope="module")
def client(bytes_server):
    c = httpclient.InferenceServerClient(url=bytes_server.url, concurrency=8)
    yield c
    c.close()


def identity_request(values, binary_in, binary_out):
    x = httpclient.InferInput("text", list(values.shape), "BYTES")
    x.set_data_from_numpy(values, binary_data=binary_in)
    return [x], [httpclient.InferRequestedOutput("text_out", binary_data=binary_out)]


def as_bytes(a):
    return [v.encode() if isinstance(v, str) else bytes(v) for v in a.reshape(-1)]


def test_metadata_says_bytes(client):
    md = client.get_model_metadata("str_identity")
    assert md["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1, 2]}]
    assert client.get_model_config("str_identity")["input"][0]["data_type"] == "TYPE_STRING"


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, True), (False, True), (True, False)])
def test_http_identity(client, binary_in, binary_out):
    values = np.array([["hello", ""], ["wörld", "a b c"]], dtype=np.object_)
    inputs, outputs = identity_request(values, binary_in, binary_out)
    r = client.infer("str_identity", inputs, outputs=outputs)
    out = r.as_numpy("text_out")
    assert out.shape == (2, 2)
    assert as_bytes(out) == [b"hello", b"", "wörld".encode(), b"a b c"]
    assert r.get_output("text_out")["datatype"] == "BYTES"


def test_http_json_body_by_hand(bytes_server):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["x", "yz"]}]}
    c = http.client.HTTPConnection("127.0.0.1", bytes_server.http_port, timeout=30)
    c.request("POST", "/v2/models/str_identity/infer", body=json.dumps(body))
    r = c.getresponse()
    out = json.loads(r.read())
    c.close()
    assert r.status == 200
    assert out["outputs"] == [{"name": "text_out", "datatype": "BYTES", "shape": [1, 2], "data": ["x", "yz"]}]


def test_http_binary_elements_are_length_prefixed(bytes_server):
    data = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2],
                                     "parameters": {"binary_data_size": len(data)}}],
                         "outputs": [{"name": "text_out", "parameters": {"binary_data": True}}]}).encode()
    c = http.client.HTTPConnection("127.0.0.1", bytes_server.http_port, timeout=30)
    c.request("POST", "/v2/models/str_identity/infer", body=header + data,
              headers={"Inference-Header-Content-Length": str(len(header))})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    n = int(r.getheader("Inference-Header-Content-Length"))
    assert json.loads(body[:n])["outputs"][0]["parameters"]["binary_data_size"] == len(data)
    assert body[n:] == data


@pytest.mark.parametrize("data,message", [
    (struct.pack("<I", 9) + b"abc", "element 0 has length 9 but only 3 bytes follow"),
    (struct.pack("<I", 1) + b"a", "BYTES data ends at element 1 of 2"),
    (struct.pack("<I", 1) + b"a" + struct.pack("<I", 0) + b"zz", "2 bytes follow the 2 BYTES elements"),
])
def test_http_bad_serialized_bytes(bytes_server, data, message):
    header = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2],
                                     "parameters": {"binary_data_size": len(data)}}]}).encode()
    c = http.client.HTTPConnection("127.0.0.1", bytes_server.http_port, timeout=30)
    c.request("POST", "/v2/models/str_identity/infer", body=header + data,
              headers={"Inference-Header-Content-Length": str(len(header))})
    r = c.getresponse()
    body = json.loads(r.read())
    c.close()
    assert r.status == 400 and message in body["error"], body


def test_http_json_element_must_be_a_string(bytes_server):
    body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1, 2], "data": ["x", 5]}]}
    c = http.client.HTTPConnection("127.0.0.1", bytes_server.http_port, timeout=30)
    c.request("POST", "/v2/models/str_identity/infer", body=json.dumps(body))
    r = c.getresponse()
    out = json.loads(r.read())
    c.close()
    assert r.status == 400 and "element 1 (5) is not a valid BYTES" in out["error"]


def test_concurrent_string_requests_batch_and_come_back_apart(client):
    # tritonclient's HTTP client is gevent-based: async requests, not threads.
    pending = []
    for i in range(48):
        values = np.array([[f"r{i}" * (i + 1), str(i)]], dtype=np.object_)
        inputs, outputs = identity_request(values, True, True)
        pending.append(client.async_infer("str_identity", inputs, outputs=outputs))
    for i, p in enumerate(pending):
        assert as_bytes(p.get_result().as_numpy("text_out")) == [(f"r{i}" * (i + 1)).encode(), str(i).encode()]
    st = client.get_inference_statistics("str_identity")["model_stats"][0]
    assert st["execution_count"] < st["inference_count"]


def test_http_data_dependent_string_output(client):
    x = httpclient.InferInput("words", [1, 3], "BYTES")
    x.set_data_from_numpy(np.array([["the", "quick", "Fox"]], dtype=np.object_))
    r = client.infer("str_upper", [x])
    out = r.as_numpy("upper")
    assert out.shape == (1, 2) and as_bytes(out) == [b"QUICK", b"FOX"]


def test_grpc_identity_and_bytes_contents(bytes_server):
    if bytes_server.grpc_url is None:
        pytest.skip("kiln was built without gRPC")
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    c = grpcclient.InferenceServerClient(url=bytes_server.grpc_url)
    values = np.array([[b"\x00\xffraw", b"two"]], dtype=np.object_)
    x = grpcclient.InferInput("text", [1, 2], "BYTES")
    x.set_data_from_numpy(values)
    out = c.infer("str_identity", [x]).as_numpy("text_out")
    assert as_bytes(out) == [b"\x00\xffraw", b"two"]
    x = grpcclient.InferInput("words", [1, 2], "BYTES")
    x.set_data_from_numpy(np.array([["a", "the"]], dtype=np.object_))
    assert as_bytes(c.infer("str_upper", [x]).as_numpy("upper")) == [b"A"]
    c.close()

    # Typed contents: bytes_contents; the answer is raw_output_contents, length-prefixed.
    channel = grpc.insecure_channel(bytes_server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = service_pb2.ModelInferRequest(model_name="str_identity")
    t = req.inputs.add(name="text", datatype="BYTES", shape=[1, 2])
    t.contents.bytes_contents.extend([b"p", b"qr"])
    resp = stub.ModelInfer(req)
    assert resp.outputs[0].datatype == "BYTES" and list(resp.outputs[0].shape) == [1, 2]
    assert resp.raw_output_contents[0] == struct.pack("<I", 1) + b"p" + struct.pack("<I", 2) + b"qr"
    bad = service_pb2.ModelInferRequest(model_name="str_identity")
    bad.inputs.add(name="text", datatype="BYTES", shape=[1, 2])
    bad.raw_input_contents.append(struct.pack("<I", 5) + b"ab")
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "element 0 has length 5 but only 2 bytes follow" in e.value.details()
    channel.close()
