"""--model-control-mode=explicit: load, unload, readiness, and a reload that
does not fail requests in flight."""
import os

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import KilnServer


@pytest.fixture(scope="module")
def explicit(repo, workdir):
    s = KilnServer(["--model-repository", repo, "--model-control-mode", "explicit", "--load-model", "add_sub"],
                   os.path.join(workdir, "cache"))
    c = httpclient.InferenceServerClient(url=s.url, concurrency=8)
    yield c
    c.close()
    assert s.stop() == 0


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
