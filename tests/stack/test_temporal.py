from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus

import stack.temporal as temporal_mod
from stack.ports import PortInUseError, load_or_allocate_ports
from stack.temporal import TemporalDevServer
from tests.stack.conftest import alive, processes_using
from workflows.search_attributes import DEV_SERVER_FLAGS

REPO = Path(__file__).resolve().parents[2]


def _server(data_dir: Path, *, ui: bool = False) -> TemporalDevServer:
    ports = load_or_allocate_ports(data_dir)
    return TemporalDevServer(
        data_dir,
        port=ports.temporal,
        ui_port=ports.temporal_ui if ui else None,
        log_path=data_dir / "logs" / "temporal.log",
    )


async def _search_attributes(client: Client) -> dict[str, int]:
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return dict(resp.custom_attributes)


async def test_start_connect_and_restart_keeps_workflows(data_dir: Path) -> None:
    server = _server(data_dir, ui=True)
    ports = load_or_allocate_ports(data_dir)
    assert server.address == f"127.0.0.1:{ports.temporal}"
    assert server.ui_url == f"http://127.0.0.1:{ports.temporal_ui}"
    try:
        server.start()
        client = await Client.connect(server.address)
        registered = await _search_attributes(client)
        for name in DEV_SERVER_FLAGS:
            assert registered[name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        # No worker: the execution just sits there, which is all persistence needs.
        await client.start_workflow("NoSuchWorkflow", id="persist-me", task_queue="nobody")
        first_pid = server.pid
        assert first_pid is not None
    finally:
        server.stop()
    assert not alive(first_pid)
    assert server.db_path.exists()

    again = _server(data_dir, ui=True)
    try:
        again.start()
        client = await Client.connect(again.address)
        desc = await client.get_workflow_handle("persist-me").describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        assert desc.workflow_type == "NoSuchWorkflow"
        assert set(DEV_SERVER_FLAGS) <= set(await _search_attributes(client))
    finally:
        again.stop()
    assert not processes_using(again.db_path)


async def test_attributes_added_since_last_start_are_registered(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI ignores --search-attribute for names new to an existing db; start() adds them."""
    first_name = next(iter(DEV_SERVER_FLAGS))
    monkeypatch.setattr(
        temporal_mod, "DEV_SERVER_FLAGS", {first_name: DEV_SERVER_FLAGS[first_name]}
    )
    server = _server(data_dir)
    try:
        server.start()
        client = await Client.connect(server.address)
        assert set(DEV_SERVER_FLAGS) & set(await _search_attributes(client)) == {first_name}
    finally:
        server.stop()

    monkeypatch.setattr(temporal_mod, "DEV_SERVER_FLAGS", dict(DEV_SERVER_FLAGS))
    try:
        server.start()
        client = await Client.connect(server.address)
        assert set(DEV_SERVER_FLAGS) <= set(await _search_attributes(client))
    finally:
        server.stop()


def test_changed_attribute_type_is_refused(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = _server(data_dir)
    try:
        server.start()
    finally:
        server.stop()
    name = next(iter(DEV_SERVER_FLAGS))
    monkeypatch.setattr(temporal_mod, "DEV_SERVER_FLAGS", {**DEV_SERVER_FLAGS, name: "Int"})
    with pytest.raises(temporal_mod.TemporalError, match=f"search attribute {name} is registered"):
        server.start()
    assert server.pid is None
    assert not processes_using(server.db_path)


def test_port_taken_by_another_listener(data_dir: Path) -> None:
    server = _server(data_dir)
    port = load_or_allocate_ports(data_dir).temporal
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with pytest.raises(PortInUseError) as info:
            server.start()
    assert str(info.value) == (
        f"port {port} (temporal) is already in use by another process; "
        f"stop it or remove {data_dir / 'ports.json'} to pick new ports"
    )
    assert server.pid is None


_ORPHAN = """
import os, sys, threading
from pathlib import Path
from stack.temporal import TemporalDevServer
data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
server = TemporalDevServer(data_dir, port=port, ui_port=None, log_path=data_dir / "t.log")
# Off the main thread: no parent-death signal, so the server outlives this process.
t = threading.Thread(target=server.start)
t.start()
t.join()
print(server.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def test_orphan_from_crashed_run_is_stopped_and_replaced(data_dir: Path) -> None:
    port = load_or_allocate_ports(data_dir).temporal
    out = subprocess.run(
        [sys.executable, "-c", _ORPHAN, str(data_dir), str(port)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert out.returncode == -9, out.stderr
    orphan = int(out.stdout)
    assert alive(orphan)
    server = _server(data_dir)
    try:
        server.start()
        assert not alive(orphan)
        assert server.pid != orphan
    finally:
        server.stop()
