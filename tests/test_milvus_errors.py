"""How a Milvus server's refusals read: one line, exit 3, naming the fix.

Milvus Lite has no users or roles, so a wrong token cannot be provoked end to end here;
and no server is faked. These tests check the mapping (rag.milvus_store._unavailable) on
the exceptions pymilvus 3 raises against a server with authorization on: real gRPC error
objects with the status codes and details Milvus sends, wrapped the way pymilvus wraps
them (pymilvus/client/grpc_handler.py, _wait_for_channel_ready: a failed Connect RPC
becomes MilvusException(code=2, "Fail connecting to server on ...") raised from the gRPC
error). Verified only as a mapping: see the README, "Scale out".
"""

from __future__ import annotations

import grpc
import pytest
from click.testing import CliRunner

from rag import milvus_store
from rag.errors import StoreUnavailableError, exit_code
from test_store_contract import milvus_only

pytestmark = milvus_only

SERVER = milvus_store.parse("milvus://db.example:19530#support")


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.RpcError:
    """The error grpc raises for a finished call (what pymilvus sees from the server)."""
    from grpc import _channel

    return _channel._InactiveRpcError(_channel._RPCState((), None, None, code, details))


def raised_at_connect(cause: grpc.RpcError) -> Exception:
    from pymilvus.exceptions import MilvusException

    try:
        try:
            raise cause
        except grpc.RpcError as exc:
            raise MilvusException(code=2, message="Fail connecting to server on db.example:19530, illegal "
                                                  "connection params or server unavailable") from exc
    except MilvusException as wrapped:
        return wrapped


def one_line(error: StoreUnavailableError) -> str:
    text = str(error)
    assert exit_code(error) == 3 and "\n" not in text
    return text


WRONG_PASSWORD = rpc_error(grpc.StatusCode.UNAUTHENTICATED,
                           "auth check failure, please check username and password are correct")


@pytest.mark.parametrize("exc", [
    raised_at_connect(WRONG_PASSWORD),  # MilvusClient(uri, token="rag:wrong")
    raised_at_connect(rpc_error(grpc.StatusCode.UNAUTHENTICATED, "missing authorization in header")),  # no token
    WRONG_PASSWORD,  # a call after the token was revoked
], ids=["wrong-password-at-connect", "no-token-at-connect", "revoked-mid-session"])
def test_a_refused_token_says_to_fix_rag_milvus_token(exc):
    text = one_line(milvus_store._unavailable(SERVER, exc))
    assert "refused the token" in text and "RAG_MILVUS_TOKEN" in text
    assert "cannot reach" not in text  # pymilvus's "Fail connecting" wrapper does not decide


def test_older_wrappings_of_the_same_refusal():
    from pymilvus.exceptions import MilvusException

    for exc in (MilvusException(code=1800, message="user hasn't authenticated"),
                MilvusException(code=1, message=str(rpc_error(grpc.StatusCode.UNKNOWN, "auth check failure, "
                                                              "please check username and password are correct")))):
        assert "refused the token" in one_line(milvus_store._unavailable(SERVER, exc))


def test_a_role_without_the_privilege_is_not_a_token_problem():
    exc = rpc_error(grpc.StatusCode.PERMISSION_DENIED,
                    "PrivilegeInsert: permission deny to rag_reader in the `default` database")
    text = one_line(milvus_store._unavailable(SERVER, exc))
    assert "PrivilegeInsert: permission deny to rag_reader" in text and "read-write" in text
    assert "refused the token" not in text


def test_an_unreachable_server_is_still_unreachable():
    exc = raised_at_connect(rpc_error(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"))
    assert "cannot reach the Milvus engine at db.example:19530" in one_line(milvus_store._unavailable(SERVER, exc))


def test_rag_ask_with_a_refused_token_prints_one_line_and_exits_3(monkeypatch):
    """The whole path from the CLI: connecting raises what pymilvus raises for a wrong password."""
    import pymilvus

    from rag.cli import main

    def refusing_client(*args, **kwargs):
        raise raised_at_connect(WRONG_PASSWORD)

    monkeypatch.setattr(pymilvus, "MilvusClient", refusing_client)
    monkeypatch.setenv("RAG_MILVUS_TOKEN", "rag:wrong")
    milvus_store.release(SERVER)
    result = CliRunner().invoke(main, ["ask", "What is the refund policy?", "-g", "extractive",
                                       "--index", str(SERVER)])
    assert result.exit_code == 3, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused the token" in lines[0] and "RAG_MILVUS_TOKEN" in lines[0], result.output
