"""HTTP connections that stop: an idle keep-alive connection, a request cut
short and a client that stops reading its answer each give back their thread
and socket after --http-idle-timeout-secs (a request cut short is answered
408 first), and the server keeps serving everyone else meanwhile."""
import json
import os
import socket
import time

import pytest
from conftest import KilnServer

TIMEOUT_S = 1


@pytest.fixture(scope="module")
def idle_server(repo, workdir):
    s = KilnServer(["--model-repository", repo, "--http-idle-timeout-secs", str(TIMEOUT_S)],
                   os.path.join(workdir, "cache"))
    yield s
    assert s.stop() == 0, "".join(s.log)


def open_sockets(server):
    """The server process's open sockets (listeners, gRPC's, connections)."""
    fd_dir = f"/proc/{server.proc.pid}/fd"
    n = 0
    for f in os.listdir(fd_dir):
        try:
            n += os.readlink(os.path.join(fd_dir, f)).startswith("socket:")
        except FileNotFoundError:  # closed between the listing and the look
            pass
    return n


def sockets_back_to(server, baseline, within_s):
    until = time.monotonic() + within_s
    while open_sockets(server) > baseline and time.monotonic() < until:
        time.sleep(0.05)
    return open_sockets(server) <= baseline


def connect(server):
    return socket.create_connection(("127.0.0.1", server.http_port), timeout=TIMEOUT_S + 10)


def read_until_closed(s):
    """Everything the server sends until it closes the connection, and when
    that was (seconds from the call)."""
    t0, reply = time.monotonic(), b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return reply, time.monotonic() - t0
        reply += chunk


def live(server):
    s = connect(server)
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    reply, _ = read_until_closed(s)
    s.close()
    return reply.startswith(b"HTTP/1.1 200")


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(idle_server):
    baseline = open_sockets(idle_server)
    s = connect(idle_server)
    reply, after = read_until_closed(s)
    s.close()
    assert reply == b""
    assert TIMEOUT_S * 0.8 <= after < TIMEOUT_S + 3, after
    assert sockets_back_to(idle_server, baseline, 2)


def test_a_keep_alive_connection_idle_after_its_answer_is_closed(idle_server):
    baseline = open_sockets(idle_server)
    s = connect(idle_server)
    s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    reply, after = read_until_closed(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 200"), reply
    assert after >= TIMEOUT_S * 0.8, after  # kept open for the next request until the timeout
    assert sockets_back_to(idle_server, baseline, 2)


@pytest.mark.parametrize("part", [
    b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\n",  # headers cut short
    b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inputs\"",  # body
])
def test_a_request_cut_short_is_answered_408_and_closed(idle_server, part):
    baseline = open_sockets(idle_server)
    s = connect(idle_server)
    s.sendall(part)
    reply, after = read_until_closed(s)
    s.close()
    assert reply.startswith(b"HTTP/1.1 408"), reply
    body = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": f"the request stopped arriving: no byte for {TIMEOUT_S} s (--http-idle-timeout-secs)"}
    assert after < TIMEOUT_S + 3, after
    assert sockets_back_to(idle_server, baseline, 2)


def test_a_client_that_stops_reading_its_answer_frees_the_connection(idle_server):
    # 16 MB of int64 in and out (binary), far more than the sockets buffer:
    # the server's write stalls once the client stops reading.
    n = 2 << 20
    header = json.dumps({
        "inputs": [{"name": "ids", "datatype": "INT64", "shape": [1, n], "parameters": {"binary_data_size": 8 * n}}],
        "outputs": [{"name": "ids_out", "parameters": {"binary_data": True}}],
    }).encode()
    data = os.urandom(8 * n)
    baseline = open_sockets(idle_server)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(TIMEOUT_S + 10)
    s.connect(("127.0.0.1", idle_server.http_port))
    s.sendall(b"POST /v2/models/identity_i64/infer HTTP/1.1\r\nHost: x\r\n"
              b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(header), len(header) + len(data))
              + header + data)
    # The answer is being written and cannot finish: the server gives up after
    # the timeout while the client still holds its socket open.
    assert sockets_back_to(idle_server, baseline, TIMEOUT_S + 5), open_sockets(idle_server)
    s.close()
    assert live(idle_server)


def test_others_are_served_while_connections_hang(idle_server):
    hung = [connect(idle_server) for _ in range(3)]
    hung[0].sendall(b"POST /v2/models/add_sub/infer HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    assert live(idle_server)
    assert time.monotonic() - t0 < TIMEOUT_S * 0.5
    for s in hung:
        s.close()
