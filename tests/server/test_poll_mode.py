"""--model-control-mode=poll: a model added to the repository is loaded, a
removed one unloaded, without a restart."""
import os
import shutil
import time

import tritonclient.http as httpclient
from onnx import TensorProto, helper

from conftest import KilnServer, save_model, vi


def wait_for(predicate, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_poll_loads_new_and_unloads_removed_models(workdir):
    root = os.path.join(workdir, "poll_repo")
    f32 = TensorProto.FLOAT
    save_model(os.path.join(root, "first", "1", "model.onnx"), [helper.make_node("Relu", ["x"], ["y"])],
               [vi("x", f32, [2])], [vi("y", f32, [2])])
    s = KilnServer(["--model-repository", root, "--model-control-mode", "poll", "--repository-poll-secs", "1"],
                   os.path.join(workdir, "cache"))
    c = httpclient.InferenceServerClient(url=s.url)
    try:
        assert c.is_model_ready("first")
        save_model(os.path.join(root, "second", "1", "model.onnx"), [helper.make_node("Neg", ["x"], ["y"])],
                   [vi("x", f32, [2])], [vi("y", f32, [2])])
        assert wait_for(lambda: c.is_model_ready("second"))
        shutil.rmtree(os.path.join(root, "first"))
        assert wait_for(lambda: not c.is_model_ready("first"))
        assert c.is_server_ready()
    finally:
        c.close()
        assert s.stop() == 0
