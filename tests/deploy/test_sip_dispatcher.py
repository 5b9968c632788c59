"""deploy/sip: the Kamailio dispatcher example parses, loads its list and routes calls as its README says.

`kamailio -c` checks the configuration and the modules it loads. Then a real Kamailio runs the same file on
loopback (only its settings differ: listen address and port, the list, the control socket, a 1 s probing
interval, the trunk network) in front of two stand-in media-gateway replicas, UDP sockets that answer like
PJSIP does, and a stand-in trunk. It checks that calls go to the replica with the fewest calls, that a 503
moves the INVITE to the other replica, that a replica that stops answering OPTIONS gets no calls until it
answers again, that in-dialog requests (ACK, INFO, BYE from the trunk; REFER from the replica) follow the
Record-Route to the replica that answered, and that requests from outside the trunk network are refused.
Kamailio is Debian's package (scripts/install-kamailio.sh, run by `make test` and `make k8s-check`).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.conftest import K8S, MEDIA, Manifest, of_kind

Render = Callable[[str], list[Manifest]]
SIP = K8S.parent / "sip"
CONFIG = SIP / "kamailio.cfg"
LIST = SIP / "dispatcher.list"
PING_INTERVAL = 1  # seconds, in the test copy


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail(
            f"{name} is needed to check deploy/sip (Debian package kamailio: scripts/install-kamailio.sh)"
        )
    return found


def check_config(*defines: str) -> subprocess.CompletedProcess[str]:
    command = [tool("kamailio"), "-c", "-f", str(CONFIG)]
    for define in defines:
        command += ["-A", define]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def free_port() -> int:
    """A port free for UDP and TCP on 127.0.0.1 (Kamailio listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


# --- the files as shipped ----------------------------------------------------------------------------------


def test_the_configuration_parses_as_shipped_and_with_test_settings() -> None:
    shipped = check_config()
    assert shipped.returncode == 0, shipped.stderr
    assert "config file ok" in shipped.stdout + shipped.stderr
    port = free_port()
    local = check_config(f"LISTEN=udp:127.0.0.1:{port}", f"LISTEN_TCP=tcp:127.0.0.1:{port}")
    assert local.returncode == 0, local.stderr


def test_a_broken_configuration_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "kamailio.cfg"
    broken.write_text(CONFIG.read_text(encoding="utf-8").replace("route(DISPATCH);", "route(DISPATCH)"))
    result = subprocess.run(
        [tool("kamailio"), "-c", "-f", str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0


@dataclass(frozen=True)
class Destination:
    setid: int
    uri: str
    flags: int
    priority: int
    attrs: dict[str, str]


def destinations(text: str) -> list[Destination]:
    """The lines of a dispatcher list file: setid uri [flags [priority [attrs]]]."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        setid, uri, flags, priority, attrs = line.split()
        pairs = dict(pair.split("=", 1) for pair in attrs.split(";"))
        found.append(Destination(int(setid), uri, int(flags), int(priority), pairs))
    return found


def test_the_list_names_every_prod_replica_with_its_lines(rendered: Render) -> None:
    objects = rendered("overlays/prod")
    statefulset = of_kind(objects, "StatefulSet")[MEDIA]
    service = of_kind(objects, "Service")[statefulset["spec"]["serviceName"]]
    pod = statefulset["spec"]["template"]["spec"]
    (ref,) = [e["configMapRef"]["name"] for c in pod["containers"] for e in c["envFrom"]]
    config = of_kind(objects, "ConfigMap")[ref]["data"]
    found = destinations(LIST.read_text(encoding="utf-8"))
    domain = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    assert [d.uri for d in found] == [
        f"sip:{MEDIA}-{n}.{domain}:{config['HIBIKI_SIP_PORT']};transport=udp"
        for n in range(statefulset["spec"]["replicas"])
    ]
    for n, destination in enumerate(found):
        assert destination.setid == 1
        assert destination.flags == 16  # DNS names resolved when used
        assert destination.attrs == {"duid": f"{MEDIA}-{n}", "maxload": config["HIBIKI_MEDIA_MAX_CALLS"]}


def test_the_shipped_list_loads(kamailio: Callable[..., Kamailio]) -> None:
    running = kamailio(LIST.read_text(encoding="utf-8"))
    assert set(running.states()) == {d.uri for d in destinations(LIST.read_text(encoding="utf-8"))}


# --- a running Kamailio in front of stand-in replicas ------------------------------------------------------


@dataclass
class Message:
    start: str
    headers: list[tuple[str, str]]
    source: tuple[str, int] = ("", 0)

    @property
    def method(self) -> str:
        return "" if self.start.startswith("SIP/2.0") else self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1]) if self.start.startswith("SIP/2.0") else 0

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def get(self, name: str) -> str:
        values = self.all(name)
        return values[0] if values else ""

    @property
    def cseq_method(self) -> str:
        return self.get("CSeq").split()[-1]

    @staticmethod
    def parse(data: bytes, source: tuple[str, int]) -> Message:
        head = data.decode().split("\r\n\r\n", 1)[0].split("\r\n")
        headers = []
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        return Message(head[0], headers, source)

    def encode(self) -> bytes:
        lines = [
            self.start,
            *(f"{name}: {value}" for name, value in self.headers),
            "Content-Length: 0",
            "",
            "",
        ]
        return "\r\n".join(lines).encode()


def _uri_address(uri: str) -> tuple[str, int]:
    host_port = re.sub(r"^<?sips?:([^@>]*@)?", "", uri).split(";")[0].split(">")[0]
    host, _, port = host_port.partition(":")
    return host, int(port or 5060)


_tags = itertools.count(1)


class Party:
    """A SIP endpoint on a UDP socket: the trunk, or a replica that answers like PJSIP."""

    def __init__(self, name: str, host: str = "127.0.0.1") -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.1)
        self.address: tuple[str, int] = self.sock.getsockname()
        self.answer_options = True
        self.invite_status = 200
        self.requests: list[Message] = []  # as received (requests only)
        self.responses: list[Message] = []
        self.dialogs: dict[str, Message] = {}  # Call-ID -> the INVITE it answered (replica side)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"sip-{name}", daemon=True)
        self._thread.start()

    @property
    def contact(self) -> str:
        return f"<sip:{self.name}@{self.address[0]}:{self.address[1]}>"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def send(self, message: Message, to: tuple[str, int]) -> None:
        self.sock.sendto(message.encode(), to)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except (TimeoutError, OSError):
                continue
            message = Message.parse(data, source)
            with self._lock:
                (self.responses if message.status else self.requests).append(message)
            if message.method:
                self._answer(message)

    def _answer(self, request: Message) -> None:
        if request.method == "OPTIONS":
            if self.answer_options:
                self.send(self.reply(request, 200, "OK"), request.source)
        elif request.method == "INVITE":
            self.send(self.reply(request, 100, "Trying"), request.source)
            status = self.invite_status
            final = self.reply(
                request, status, "OK" if status == 200 else "Refused", record_route=status == 200
            )
            if status == 200:
                self.dialogs[request.get("Call-ID")] = request
            self.send(final, request.source)
        elif request.method in ("BYE", "INFO", "REFER"):
            self.send(self.reply(request, 202 if request.method == "REFER" else 200, "OK"), request.source)

    def reply(self, request: Message, status: int, reason: str, record_route: bool = False) -> Message:
        headers = [("Via", via) for via in request.all("Via")]
        if record_route:
            headers += [("Record-Route", rr) for rr in request.all("Record-Route")]
        to = request.get("To")
        if status > 100 and ";tag=" not in to:
            to += f";tag={self.name}-{next(_tags)}"
        headers += [("From", request.get("From")), ("To", to), ("Call-ID", request.get("Call-ID"))]
        headers.append(("CSeq", request.get("CSeq")))
        if request.method == "INVITE" and 200 <= status < 300:
            headers.append(("Contact", self.contact))
        return Message(f"SIP/2.0 {status} {reason}", headers)

    def request(
        self, method: str, uri: str, call_id: str, cseq: int, *, from_: str, to: str, route: list[str] = ()
    ) -> Message:
        branch = f"z9hG4bK-{uuid.uuid4().hex[:12]}"
        headers = [
            ("Via", f"SIP/2.0/UDP {self.address[0]}:{self.address[1]};branch={branch};rport"),
            *(("Route", r) for r in route),
            ("Max-Forwards", "70"),
            ("From", from_),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", self.contact),
        ]
        if method == "REFER":
            headers.append(("Refer-To", "<sip:+81356780900@operator.invalid>"))
        return Message(f"{method} {uri} SIP/2.0", headers)

    def wait(self, found: Callable[[], Message | None], what: str, timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                message = found()
            if message is not None:
                return message
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: no {what} within {timeout:.0f} s")

    def final_response(self, call_id: str, method: str) -> Message:
        def found() -> Message | None:
            for r in self.responses:
                if r.get("Call-ID") == call_id and r.cseq_method == method and r.status >= 200:
                    return r
            return None

        return self.wait(found, f"final response to {method} {call_id}")

    def received(self, method: str, call_id: str) -> Message:
        def found() -> Message | None:
            for r in self.requests:
                if r.method == method and r.get("Call-ID") == call_id:
                    return r
            return None

        return self.wait(found, f"{method} of {call_id}")

    def got(self, method: str, call_id: str) -> bool:
        with self._lock:
            return any(r.method == method and r.get("Call-ID") == call_id for r in self.requests)


@dataclass
class Kamailio:
    process: subprocess.Popen[bytes]
    port: int
    control: str
    log: Path
    work: Path = field(repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def rpc(self, *command: str) -> str:
        result = subprocess.run(
            [tool("kamcmd"), "-s", self.control, *command],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def states(self) -> dict[str, str]:
        """Destination URI -> dispatcher flags (A active, I inactive, P probing)."""
        return dict(re.findall(r"URI: (\S+)\s+FLAGS: (\S+)", self.rpc("dispatcher.list")))

    def loads(self) -> dict[str, int]:
        """Destination URI -> calls counted against it (algorithm 10)."""
        found = re.findall(r"URI: (\S+)\s.*?DLGLOAD: (\d+)", self.rpc("dispatcher.list"), re.DOTALL)
        return {uri: int(load) for uri, load in found}

    def wait_states(self, wanted: dict[str, str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states()
            if all(states.get(uri, "").startswith(flags) for uri, flags in wanted.items()):
                return
            time.sleep(0.2)
        raise AssertionError(f"dispatcher states {self.states()} never became {wanted}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


@pytest.fixture
def kamailio() -> Iterator[Callable[..., Kamailio]]:
    """Start Kamailio with deploy/sip/kamailio.cfg on loopback and the given dispatcher list."""
    started: list[Kamailio] = []
    # Short: the control socket's path must fit a UNIX socket address.
    work = Path(tempfile.mkdtemp(prefix="hibiki-sip-"))

    def start(list_text: str, trunk_networks: str = "127.0.0.1/32") -> Kamailio:
        (work / "dispatcher.list").write_text(list_text, encoding="utf-8")
        port = free_port()
        control = f"unix:{work}/ctl"
        log = work / "kamailio.log"
        defines = [
            f"LISTEN=udp:127.0.0.1:{port}",
            f"LISTEN_TCP=tcp:127.0.0.1:{port}",
            f'DISPATCHER_LIST="{work}/dispatcher.list"',
            f'CTL_SOCKET="{control}"',
            f'TRUNK_NETWORKS="{trunk_networks}"',
            f"PING_INTERVAL={PING_INTERVAL}",
        ]
        command = [tool("kamailio"), "-f", str(CONFIG), "-DD", "-E", "-Y", str(work), "-w", str(work)]
        command += ["-m", "32", "-M", "8"]
        for define in defines:
            command += ["-A", define]
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        running = Kamailio(process, port, control, log, work)
        started.append(running)
        deadline = time.monotonic() + 15
        while not Path(control.removeprefix("unix:")).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"kamailio did not start:\n{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.05)
        return running

    yield start
    for running in started:
        running.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def replicas() -> Iterator[tuple[Party, Party]]:
    first, second = Party("media-gateway-0"), Party("media-gateway-1")
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def trunk() -> Iterator[Party]:
    party = Party("trunk")
    yield party
    party.close()


def listed(*replicas: Party) -> str:
    return "".join(
        f"1 sip:{r.address[0]}:{r.address[1]};transport=udp 0 0 duid={r.name};maxload=32\n" for r in replicas
    )


def uri_of(replica: Party) -> str:
    return f"sip:{replica.address[0]}:{replica.address[1]};transport=udp"


@dataclass
class Call:
    call_id: str
    from_: str
    to: str  # with the answering side's tag once answered
    route: list[str]  # the trunk's route set (Record-Route reversed)
    contact: str  # the replica's Contact


def dial(trunk: Party, edge: Kamailio, number: str = "+81312345678") -> tuple[str, Message]:
    call_id = f"{uuid.uuid4().hex}@trunk"
    uri = f"sip:{number}@127.0.0.1:{edge.port}"
    invite = trunk.request(
        "INVITE",
        uri,
        call_id,
        1,
        from_=f"<sip:+819012345678@trunk.invalid>;tag=caller-{next(_tags)}",
        to=f"<sip:{number}@hibiki.invalid>",
    )
    trunk.send(invite, edge.address)
    return call_id, trunk.final_response(call_id, "INVITE")


def answered(trunk: Party, edge: Kamailio, number: str = "+81312345678") -> Call:
    call_id, final = dial(trunk, edge, number)
    assert final.status == 200, final.start
    route = list(reversed(final.all("Record-Route")))
    call = Call(call_id, final.get("From"), final.get("To"), route, final.get("Contact").strip("<>"))
    ack = trunk.request("ACK", call.contact, call_id, 1, from_=call.from_, to=call.to, route=call.route)
    trunk.send(ack, _uri_address(call.route[0]))
    return call


def hang_up(trunk: Party, call: Call) -> Message:
    bye = trunk.request("BYE", call.contact, call.call_id, 3, from_=call.from_, to=call.to, route=call.route)
    trunk.send(bye, _uri_address(call.route[0]))
    return trunk.final_response(call.call_id, "BYE")


def test_calls_go_to_the_replica_with_the_fewest_and_dialogs_stay_with_it(
    kamailio: Callable[..., Kamailio], replicas: tuple[Party, Party], trunk: Party
) -> None:
    first, second = replicas
    edge = kamailio(listed(first, second))
    edge.wait_states({uri_of(first): "A", uri_of(second): "A"})

    # Two calls in progress: one on each replica.
    calls = [answered(trunk, edge), answered(trunk, edge)]
    owners = [first if first.got("INVITE", c.call_id) else second for c in calls]
    assert {owners[0].name, owners[1].name} == {first.name, second.name}
    assert edge.loads() == {uri_of(first): 1, uri_of(second): 1}
    for call, owner in zip(calls, owners, strict=True):
        other = second if owner is first else first
        assert not other.got("INVITE", call.call_id)
        invite = owner.received("INVITE", call.call_id)
        # This proxy stays on the path: its Record-Route, loose routing.
        (record_route,) = invite.all("Record-Route")
        assert f"127.0.0.1:{edge.port}" in record_route and ";lr" in record_route
        assert call.route == [record_route]
        # ACK and INFO from the trunk reach the replica that answered.
        owner.received("ACK", call.call_id)
        info = trunk.request(
            "INFO", call.contact, call.call_id, 2, from_=call.from_, to=call.to, route=call.route
        )
        trunk.send(info, _uri_address(call.route[0]))
        owner.received("INFO", call.call_id)
        assert trunk.final_response(call.call_id, "INFO").status == 200

    # The replica transfers (REFER, in-dialog through the proxy back to the trunk).
    call, owner = calls[0], owners[0]
    invite = owner.dialogs[call.call_id]
    refer = owner.request(
        "REFER",
        invite.get("Contact").strip("<>"),
        call.call_id,
        1,
        from_=call.to,
        to=call.from_,
        route=invite.all("Record-Route"),
    )
    owner.send(refer, _uri_address(invite.all("Record-Route")[0]))
    assert trunk.received("REFER", call.call_id).get("Refer-To") == "<sip:+81356780900@operator.invalid>"
    assert owner.final_response(call.call_id, "REFER").status == 202

    # BYE from the trunk reaches the same replica; the load it took is released.
    for call, owner in zip(calls, owners, strict=True):
        assert hang_up(trunk, call).status == 200
        owner.received("BYE", call.call_id)

    assert edge.loads() == {uri_of(first): 0, uri_of(second): 0}


def test_a_refused_invite_moves_to_the_other_replica(
    kamailio: Callable[..., Kamailio], replicas: tuple[Party, Party], trunk: Party
) -> None:
    edge = kamailio(listed(*replicas))
    edge.wait_states({uri_of(r): "A" for r in replicas})
    # Equal loads: the destination Kamailio lists first is chosen first.
    first, second = sorted(replicas, key=lambda r: list(edge.states()).index(uri_of(r)))
    for status in (503, 486):  # draining or starting; all lines busy
        first.invite_status = status
        call = answered(trunk, edge)
        assert first.got("INVITE", call.call_id), status
        second.received("INVITE", call.call_id)
        assert call.contact == f"sip:{second.name}@{second.address[0]}:{second.address[1]}"
        first.received("ACK", call.call_id)  # the refusal is acknowledged hop by hop
        hang_up(trunk, call)
    # Both refuse: busy when the last one had no line left, else this proxy's own 503.
    second.invite_status = 486
    _, final = dial(trunk, edge)
    assert final.status == 486
    second.invite_status = 503
    _, final = dial(trunk, edge)
    assert final.start == "SIP/2.0 503 No media-gateway available"
    assert edge.loads() == {uri_of(first): 0, uri_of(second): 0}


def test_a_replica_that_stops_answering_options_gets_no_calls_until_it_answers(
    kamailio: Callable[..., Kamailio], replicas: tuple[Party, Party], trunk: Party
) -> None:
    first, second = replicas
    edge = kamailio(listed(first, second))
    edge.wait_states({uri_of(first): "A", uri_of(second): "A"})

    first.answer_options = False
    edge.wait_states({uri_of(first): "I", uri_of(second): "A"})
    calls = [answered(trunk, edge) for _ in range(3)]
    assert all(second.got("INVITE", c.call_id) and not first.got("INVITE", c.call_id) for c in calls)
    for call in calls[1:]:
        hang_up(trunk, call)

    # Back: with one call still on the other replica, the next goes to it.
    first.answer_options = True
    edge.wait_states({uri_of(first): "A", uri_of(second): "A"})
    back = answered(trunk, edge)
    assert first.got("INVITE", back.call_id) and not second.got("INVITE", back.call_id)
    hang_up(trunk, back)
    hang_up(trunk, calls[0])

    # None answers: the carrier hears 503 at once.
    first.answer_options = second.answer_options = False
    edge.wait_states({uri_of(first): "I", uri_of(second): "I"})
    _, final = dial(trunk, edge)
    assert final.status == 503


def test_requests_from_outside_the_trunk_network_or_from_a_replica_are_refused(
    kamailio: Callable[..., Kamailio], replicas: tuple[Party, Party]
) -> None:
    first, second = replicas
    edge = kamailio(listed(first, second), trunk_networks="127.0.0.1/32")
    stranger = Party("stranger", host="127.0.0.2")
    try:
        _, final = dial(stranger, edge)
        assert final.status == 403
    finally:
        stranger.close()
    # A replica starts nothing out of dialog.
    _, final = dial(first, edge)
    assert (final.status, final.start.split(" ", 2)[2]) == (403, "Not relayed")
    assert not second.requests or all(r.method == "OPTIONS" for r in second.requests)
