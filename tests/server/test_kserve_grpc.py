"""kiln serve over KServe v2 gRPC (Triton's inference.GRPCInferenceService),
driven by the official tritonclient[grpc] and, for typed contents and
malformed requests, by Triton's own compiled stubs."""
import os
import queue
import threading

import grpc
import numpy as np
import pytest

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from conftest import KilnServer  # noqa: E402


@pytest.fixture(scope="module")
def grpc_url(server):
    if server.grpc_url is None:
        pytest.skip("kiln was built without gRPC")
    return server.grpc_url


@pytest.fixture(scope="module")
def client(grpc_url):
    c = grpcclient.InferenceServerClient(url=grpc_url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(grpc_url):
    channel = grpc.insecure_channel(grpc_url)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def add_sub_inputs(a, b):
    i0 = grpcclient.InferInput("INPUT0", list(a.shape), "FP32")
    i0.set_data_from_numpy(a)
    i1 = grpcclient.InferInput("INPUT1", list(b.shape), "FP32")
    i1.set_data_from_numpy(b)
    return [i0, i1]


def typed_add_sub_request(a, b):
    req = service_pb2.ModelInferRequest(model_name="add_sub", id="typed-1")
    for name, x in (("INPUT0", a), ("INPUT1", b)):
        t = req.inputs.add(name=name, datatype="FP32", shape=list(x.shape))
        t.contents.fp32_contents.extend(x.flatten().tolist())
    return req


def code_of(excinfo):
    return excinfo.value.status()


def test_health_live_and_not_ready_while_a_model_failed(client):
    assert client.is_server_live()
    assert not client.is_server_ready()  # 'broken' should be loaded but failed


def test_server_metadata_names_kiln(client):
    md = client.get_server_metadata()
    assert md.name == "kiln" and md.version
    assert "model_repository" in md.extensions


def test_model_metadata_has_batch_dim_and_datatypes(client):
    md = client.get_model_metadata("add_sub")
    assert md.name == "add_sub" and list(md.versions) == ["1"]
    assert (md.inputs[0].name, md.inputs[0].datatype, list(md.inputs[0].shape)) == ("INPUT0", "FP32", [-1, 4])
    assert [o.name for o in md.outputs] == ["OUTPUT0", "OUTPUT1"]
    fixed = client.get_model_metadata("fixed_shape", "2", as_json=True)
    assert fixed["versions"] == ["1", "2"] and fixed["inputs"][0]["shape"] == ["2", "3"]


def test_model_config_is_tritons_message(client):
    cfg = client.get_model_config("identity_i64").config
    assert cfg.name == "identity_i64" and cfg.max_batch_size == 8
    assert cfg.input[0].name == "ids" and cfg.input[0].data_type == 9  # TYPE_INT64
    assert list(cfg.input[0].dims) == [-1]
    assert cfg.HasField("dynamic_batching")
    as_json = client.get_model_config("add_sub", as_json=True)["config"]
    assert as_json["instance_group"][0]["count"] == 2


def test_model_ready_and_versions(client):
    assert client.is_model_ready("add_sub")
    assert client.is_model_ready("fixed_shape", "1") and client.is_model_ready("fixed_shape", "2")
    assert not client.is_model_ready("fixed_shape", "3")
    assert not client.is_model_ready("no_such_model")


def test_infer_with_raw_contents(client):
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, np.float32)
    r = client.infer("add_sub", add_sub_inputs(a, b), request_id="raw-7")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    resp = r.get_response()
    assert resp.id == "raw-7" and resp.model_name == "add_sub" and resp.model_version == "1"


def test_infer_requested_output_only(client):
    a = np.ones((1, 4), np.float32)
    r = client.infer("add_sub", add_sub_inputs(a, a), outputs=[grpcclient.InferRequestedOutput("OUTPUT1")])
    assert [o.name for o in r.get_response().outputs] == ["OUTPUT1"]
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.zeros((1, 4), np.float32))


def test_infer_with_typed_contents(stub):
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    b = np.full((1, 4), 2.0, np.float32)
    resp = stub.ModelInfer(typed_add_sub_request(a, b), timeout=30)
    assert resp.id == "typed-1" and [o.name for o in resp.outputs] == ["OUTPUT0", "OUTPUT1"]
    assert list(resp.outputs[0].shape) == [1, 4] and resp.outputs[0].datatype == "FP32"
    np.testing.assert_array_equal(np.frombuffer(resp.raw_output_contents[0], np.float32), (a + b).flatten())
    np.testing.assert_array_equal(np.frombuffer(resp.raw_output_contents[1], np.float32), (a - b).flatten())


def test_typed_int64_contents_on_a_second_model(stub):
    req = service_pb2.ModelInferRequest(model_name="identity_i64")
    t = req.inputs.add(name="ids", datatype="INT64", shape=[1, 3])
    t.contents.int64_contents.extend([-5, 0, 1 << 40])
    resp = stub.ModelInfer(req, timeout=30)
    assert list(np.frombuffer(resp.raw_output_contents[0], np.int64)) == [-5, 0, 1 << 40]


def test_infer_specific_version_of_unbatched_model(client):
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    i = grpcclient.InferInput("x", [2, 3], "FP32")
    i.set_data_from_numpy(x)
    r = client.infer("fixed_shape", [i], model_version="2")
    np.testing.assert_array_equal(r.as_numpy("y"), np.maximum(x, 0))
    assert r.get_response().model_version == "2"


def test_unknown_model_and_version_are_not_found(client):
    a = np.ones((1, 4), np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("no_such_model", add_sub_inputs(a, a))
    assert code_of(e) == "StatusCode.NOT_FOUND" and "no_such_model" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        client.infer("add_sub", add_sub_inputs(a, a), model_version="9")
    assert code_of(e) == "StatusCode.NOT_FOUND"
    for call in (client.get_model_metadata, client.get_model_config, client.get_inference_statistics):
        with pytest.raises(InferenceServerException) as e:
            call("no_such_model")
        assert code_of(e) == "StatusCode.NOT_FOUND"


def test_bad_version_text_is_invalid_argument(client):
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("add_sub", "one")
    assert code_of(e) == "StatusCode.INVALID_ARGUMENT"


def expect_invalid(stub, req, fragment):
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert fragment in e.value.details(), e.value.details()


def test_malformed_requests_are_invalid_argument(stub):
    a = np.ones((1, 4), np.float32)
    good = typed_add_sub_request(a, a)

    req = service_pb2.ModelInferRequest()
    req.CopyFrom(good)
    req.inputs[0].contents.fp32_contents.append(1.0)
    expect_invalid(stub, req, "5 elements in contents but the shape needs 4")

    req.CopyFrom(good)
    req.inputs[0].datatype = "FP99"
    expect_invalid(stub, req, "unknown datatype 'FP99'")

    req.CopyFrom(good)
    req.inputs[0].contents.ClearField("fp32_contents")
    req.inputs[0].contents.int_contents.extend([1, 2, 3, 4])
    expect_invalid(stub, req, "other than the one for datatype FP32")

    req.CopyFrom(good)
    req.inputs[0].shape[:] = [1, -4]
    expect_invalid(stub, req, "negative")

    raw = service_pb2.ModelInferRequest(model_name="add_sub")
    for name in ("INPUT0", "INPUT1"):
        raw.inputs.add(name=name, datatype="FP32", shape=[1, 4])
    raw.raw_input_contents.append(a.tobytes())
    expect_invalid(stub, raw, "expected 2 raw_input_contents")
    raw.raw_input_contents.append(a.tobytes()[:12])
    expect_invalid(stub, raw, "raw_input_contents holds 12 bytes but the shape and datatype need 16")
    raw.raw_input_contents[1] = a.tobytes()
    raw.inputs[1].contents.fp32_contents.extend([1, 2, 3, 4])
    expect_invalid(stub, raw, "contents field must not be specified")

    req.CopyFrom(good)
    req.inputs[0].datatype = "FP16"
    expect_invalid(stub, req, "use raw_input_contents")

    req.CopyFrom(good)
    req.inputs[0].shape[:] = [1, 2, 2]
    req.inputs[1].shape[:] = [1, 2, 2]
    with pytest.raises(grpc.RpcError) as e:  # the scheduler's shape check
        stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()

    req.CopyFrom(good)
    req.parameters["sequence_id"].int64_param = 3
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_server_still_serves_after_malformed_requests(client):
    a = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(client.infer("add_sub", add_sub_inputs(a, a)).as_numpy("OUTPUT0"), a * 2)


def test_statistics_count_requests(client):
    before = client.get_inference_statistics("identity_i64").model_stats[0]
    i = grpcclient.InferInput("ids", [1, 2], "INT64")
    i.set_data_from_numpy(np.zeros((1, 2), np.int64))
    for _ in range(3):
        client.infer("identity_i64", [i])
    after = client.get_inference_statistics("identity_i64").model_stats[0]
    assert after.name == "identity_i64" and after.version == "1"
    assert after.inference_stats.success.count == before.inference_stats.success.count + 3
    assert after.inference_count == before.inference_count + 3
    assert after.last_inference > 0
    all_stats = client.get_inference_statistics(as_json=True)["model_stats"]
    assert {"add_sub", "identity_i64"} <= {s["name"] for s in all_stats}


def test_dynamic_batching_batches_concurrent_requests(client):
    a = np.ones((1, 4), np.float32)
    n = 16
    results = queue.Queue()
    for k in range(n):
        client.async_infer("batcher", add_sub_inputs(a * k, a),
                           lambda result, error, k=k: results.put((k, result, error)), client_timeout=60)
    for _ in range(n):
        k, r, e = results.get(timeout=60)
        assert e is None, e
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a * k + 1)
    st = client.get_inference_statistics("batcher").model_stats[0]
    assert st.inference_count == n
    assert st.execution_count < n, st
    assert any(b.batch_size > 1 for b in st.batch_stats)


def test_streaming_infer_answers_each_request_and_reports_errors(client):
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)), stream_timeout=60)
    try:
        a = np.ones((1, 4), np.float32)
        for k in range(6):
            client.async_stream_infer("add_sub", add_sub_inputs(a * k, a), request_id=f"s{k}")
        client.async_stream_infer("no_such_model", add_sub_inputs(a, a), request_id="bad")
        got, errors = {}, []
        for _ in range(7):
            r, e = results.get(timeout=60)
            if e is not None:
                errors.append(e)
            else:
                got[r.get_response().id] = r.as_numpy("OUTPUT0")
    finally:
        client.stop_stream()
    assert sorted(got) == [f"s{k}" for k in range(6)]
    for k in range(6):
        np.testing.assert_array_equal(got[f"s{k}"], a * k + a)
    assert len(errors) == 1 and "no_such_model" in errors[0].message()


def test_streamed_requests_batch_together(grpc_url):
    # A fresh client: the batcher's statistics are checked by count.
    c = grpcclient.InferenceServerClient(url=grpc_url)
    before = c.get_inference_statistics("batcher").model_stats[0]
    results = queue.Queue()
    c.start_stream(callback=lambda result, error: results.put((result, error)), stream_timeout=60)
    try:
        a = np.ones((1, 4), np.float32)
        for k in range(8):
            c.async_stream_infer("batcher", add_sub_inputs(a * k, a))
        out = [results.get(timeout=60) for _ in range(8)]
    finally:
        c.stop_stream()
    assert all(e is None for _, e in out)
    after = c.get_inference_statistics("batcher").model_stats[0]
    c.close()
    assert after.inference_count == before.inference_count + 8
    assert after.execution_count - before.execution_count < 8


def test_repository_index_reports_failed_model_with_reason(client):
    index = {m.name: m for m in client.get_model_repository_index().models}
    assert index["add_sub"].state == "READY" and index["add_sub"].version == "1"
    assert index["broken"].state == "UNAVAILABLE"
    assert "config.pbtxt:2:" in index["broken"].reason and "max_batch" in index["broken"].reason


def test_load_is_refused_outside_explicit_mode(client):
    with pytest.raises(InferenceServerException, match="explicit"):
        client.load_model("add_sub")


@pytest.fixture(scope="module")
def explicit(repo, workdir):
    s = KilnServer(["--model-repository", repo, "--model-control-mode", "explicit", "--load-model", "add_sub"],
                   os.path.join(workdir, "cache"))
    if s.grpc_url is None:
        s.stop()
        pytest.skip("kiln was built without gRPC")
    c = grpcclient.InferenceServerClient(url=s.grpc_url)
    yield c
    c.close()
    assert s.stop() == 0


def test_load_and_unload_in_explicit_mode(explicit):
    assert explicit.is_server_ready()
    assert not explicit.is_model_ready("identity_i64")
    explicit.load_model("identity_i64")
    assert explicit.is_model_ready("identity_i64")
    i = grpcclient.InferInput("ids", [1, 2], "INT64")
    i.set_data_from_numpy(np.array([[7, 8]], np.int64))
    assert explicit.infer("identity_i64", [i]).as_numpy("ids_out").tolist() == [[7, 8]]
    explicit.unload_model("identity_i64")
    assert not explicit.is_model_ready("identity_i64")
    with pytest.raises(InferenceServerException) as e:
        explicit.infer("identity_i64", [i])
    assert code_of(e) == "StatusCode.NOT_FOUND"


def test_failed_and_unknown_loads_are_errors(explicit):
    with pytest.raises(InferenceServerException, match="max_batch"):
        explicit.load_model("broken")
    with pytest.raises(InferenceServerException) as e:
        explicit.load_model("no_such_model")
    assert code_of(e) in ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND")
    with pytest.raises(InferenceServerException, match="file overrides"):
        explicit.load_model("add_sub", config='{"max_batch_size": 2}', files={"file:1/model.onnx": b"x"})
    assert explicit.is_model_ready("add_sub")
    assert explicit.get_model_config("add_sub").config.max_batch_size == 8
