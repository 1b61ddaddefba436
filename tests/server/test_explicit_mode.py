"""--model-control-mode=explicit: load, unload, readiness, a reload that
does not fail requests in flight, and loads that override config.pbtxt
(Triton's "config" load parameter)."""
import json
import os

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import KilnServer


@pytest.fixture(scope="module")
def explicit_server(repo, workdir):
    s = KilnServer(["--model-repository", repo, "--model-control-mode", "explicit", "--load-model", "add_sub"],
                   os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def explicit(explicit_server):
    c = httpclient.InferenceServerClient(url=explicit_server.url, concurrency=8)
    yield c
    c.close()


def add_inputs(k):
    a = np.full((1, 4), k, np.float32)
    inputs = [httpclient.InferInput("INPUT0", [1, 4], "FP32"), httpclient.InferInput("INPUT1", [1, 4], "FP32")]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(a)
    return inputs


def test_only_requested_models_load_and_server_is_ready(explicit):
    assert explicit.is_server_ready()
    assert explicit.is_model_ready("add_sub")
    assert not explicit.is_model_ready("identity_i64")


def test_load_and_unload(explicit):
    explicit.load_model("identity_i64")
    assert explicit.is_model_ready("identity_i64")
    explicit.unload_model("identity_i64")
    assert not explicit.is_model_ready("identity_i64")
    index = {m["name"]: m for m in explicit.get_model_repository_index()}
    assert index["identity_i64"]["state"] == "UNAVAILABLE"
    assert explicit.is_server_ready()


def test_failed_load_reports_reason_and_spares_others(explicit):
    with pytest.raises(InferenceServerException, match="max_batch"):
        explicit.load_model("broken")
    with pytest.raises(InferenceServerException, match="failed to load 'ghost'"):
        explicit.load_model("ghost")
    assert not explicit.is_server_ready()
    assert explicit.is_model_ready("add_sub")
    explicit.unload_model("broken")
    assert explicit.is_server_ready()


def test_reload_keeps_in_flight_requests(explicit):
    # tritonclient's HTTP client is gevent-based: async requests, not threads.
    pending = [explicit.async_infer("add_sub", add_inputs(k)) for k in range(40)]
    for _ in range(3):
        explicit.load_model("add_sub")
    pending += [explicit.async_infer("add_sub", add_inputs(k)) for k in range(40, 60)]
    for k, r in enumerate(pending):
        np.testing.assert_array_equal(r.get_result().as_numpy("OUTPUT0"), np.full((1, 4), 2 * k, np.float32))


def test_load_with_config_override(explicit):
    # fixed_shape's config.pbtxt serves every version; the override only version 1.
    explicit.load_model("fixed_shape", config=json.dumps({"version_policy": {"specific": {"versions": [1]}}}))
    assert explicit.is_model_ready("fixed_shape", "1") and not explicit.is_model_ready("fixed_shape", "2")
    assert explicit.get_model_config("fixed_shape")["version_policy"] == {"specific": {"versions": [1]}}
    # A load without it reads config.pbtxt again.
    explicit.load_model("fixed_shape")
    assert explicit.is_model_ready("fixed_shape", "1") and explicit.is_model_ready("fixed_shape", "2")
    explicit.unload_model("fixed_shape")


def test_config_override_replaces_a_broken_config_pbtxt(explicit):
    explicit.load_model("broken", config='{"max_batch_size": 0, "instance_group": [{"count": 2}]}')
    assert explicit.is_model_ready("broken")
    config = explicit.get_model_config("broken")
    assert config["max_batch_size"] == 0 and config["instance_group"][0]["count"] == 2
    x = httpclient.InferInput("x", [2], "FP32")
    x.set_data_from_numpy(np.array([-1, 3], np.float32))
    np.testing.assert_array_equal(explicit.infer("broken", [x]).as_numpy("y"), [0, 3])
    explicit.unload_model("broken")
    assert explicit.is_server_ready()


@pytest.mark.parametrize("config,message", [
    ('{"max_batch": 4}', "load parameter 'config': not a valid model configuration"),
    ('{"max_batch_size": 4, "name": "other"}', "name 'other' differs from the model's folder name 'add_sub'"),
    ("not json", "not a valid model configuration"),
])
def test_bad_config_override_fails_the_load_and_keeps_the_model(explicit, config, message):
    with pytest.raises(InferenceServerException, match=message):
        explicit.load_model("add_sub", config=config)
    assert explicit.is_model_ready("add_sub")
    r = explicit.infer("add_sub", add_inputs(2))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), np.full((1, 4), 4, np.float32))


def test_file_overrides_are_refused(explicit_server):
    import urllib.error
    import urllib.request
    body = json.dumps({"parameters": {"config": "{}", "file:1/model.onnx": "AAAA"}}).encode()
    req = urllib.request.Request(f"http://{explicit_server.url}/v2/repository/models/add_sub/load", data=body,
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400 and "file overrides" in json.loads(e.value.read())["error"]


def test_grpc_load_with_config_override(explicit_server, explicit):
    if explicit_server.grpc_url is None:
        pytest.skip("kiln was built without gRPC")
    import tritonclient.grpc as grpcclient
    c = grpcclient.InferenceServerClient(url=explicit_server.grpc_url)
    c.load_model("identity_i64", config=json.dumps({"max_batch_size": 2, "dynamic_batching": {}}))
    assert c.get_model_config("identity_i64").config.max_batch_size == 2
    with pytest.raises(InferenceServerException, match="not a valid model configuration"):
        c.load_model("identity_i64", config='{"max_batch_size": "lots"}')
    assert c.is_model_ready("identity_i64")
    c.unload_model("identity_i64")
    c.close()
