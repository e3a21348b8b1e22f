"""``bench/fuzz.py``: the protocol's fuzzing properties at length, then fuzz frames at a live hub.

1. **Properties.** The hypothesis properties of ``tests/protocol/test_fuzz.py`` (framing,
   decoding of arbitrary and near-valid frames, relaying), run with ``--cases`` examples in all
   instead of the suite's 300 each (``KERNAL_FUZZ_EXAMPLES``). Every call of a property counts
   as a case, and every ``ProtocolError`` decoding raised is counted by code.
2. **Live hub.** A hub process (``kernal hub``, default limits) and ``--live`` frames made from
   the same strategies (near-valid objects, shares with one field wrong or missing, arbitrary
   bytes; past 1,000, seeded mutations of those: fields dropped or swapped, bytes flipped, cut
   or repeated) sent by several clients: most
   logged in, one sending its frames in place of AUTH. After each frame the client sends a PING
   and takes everything up to its PONG as the answer. Meanwhile an honest client PINGs every
   20 ms. Afterwards: the hub is still running with no traceback in its log, the honest client
   got every PONG, and no row in the database comes from a frame that got an ERROR.

    bench/fuzz.py                        # 100,000 cases + 20,000 live frames (~5 min)
    bench/fuzz.py --cases 5000 --live 2000 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# tests/ holds the strategies. Appended, not inserted: the checkout's root also holds the
# launcher kernal.py, which must not shadow the installed kernal package.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from perf import procs, report

DOC = procs.ROOT / "docs" / "security-figures.md"
PROPERTIES = (
    "test_framing_does_not_depend_on_how_bytes_are_chunked",
    "test_framer_never_buffers_past_its_limit",
    "test_decoding_arbitrary_bytes_gives_a_message_or_a_protocol_error",
    "test_decoding_near_valid_frames_gives_a_message_or_a_protocol_error",
    "test_free_form_numbers_are_relayed_as_their_own_text",
)


# ---------------------------------------------------------------------- 1. properties


def run_properties(cases: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Each property with ``cases / len(PROPERTIES)`` examples; cases, failures, error codes."""
    per = max(1, cases // len(PROPERTIES))
    os.environ["KERNAL_FUZZ_EXAMPLES"] = str(per)  # read when test_fuzz is imported
    from kernal.protocol import ProtocolError
    from tests.protocol import test_fuzz

    codes: Counter[str] = Counter()
    decode = test_fuzz.decode_client_frame

    def counting_decode(frame: bytes) -> Any:
        try:
            return decode(frame)
        except ProtocolError as exc:
            codes[str(exc.code)] += 1
            raise

    test_fuzz.decode_client_frame = counting_decode  # type: ignore[assignment]
    results = []
    for name in PROPERTIES:
        prop = getattr(test_fuzz, name)
        inner = prop.hypothesis.inner_test
        calls = [0]

        def counted(*args: Any, _inner: Any = inner, _calls: list[int] = calls, **kw: Any) -> None:
            _calls[0] += 1
            _inner(*args, **kw)

        prop.hypothesis.inner_test = counted  # hypothesis runs what this attribute holds
        started = time.monotonic()
        failure = None
        try:
            prop()
        except Exception as exc:  # a falsified property: the bench reports it
            failure = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            prop.hypothesis.inner_test = inner
        seconds = time.monotonic() - started
        log(f"fuzz: {name}: {calls[0]:,} cases in {seconds:.0f} s" + (" FAILED" if failure else ""))
        results.append({"property": name, "cases": calls[0], "s": seconds, "failure": failure})
    test_fuzz.decode_client_frame = decode
    return {
        "per_property": per,
        "properties": results,
        "cases": sum(r["cases"] for r in results),
        "failures": sum(r["failure"] is not None for r in results),
        "codes": dict(codes),
        "seconds": sum(r["s"] for r in results),
    }


# ---------------------------------------------------------------------- 2. live hub


POOL = 1000  # cases drawn by hypothesis (slow per draw); the rest are mutations of them

Frame = tuple[bytes, str | None, str | None]


def _pool(count: int) -> list[tuple[str, Any]]:
    """``count`` cases from the suite's strategies: ("obj", a near-valid object) or ("bytes",
    arbitrary bytes)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.protocol.fuzzing import client_objects, near_valid_shares

    made: list[tuple[str, Any]] = []
    kinds = st.one_of(
        client_objects().map(lambda o: ("obj", o)),
        near_valid_shares().map(lambda o: ("obj", o)),
        st.binary(max_size=300).map(lambda b: ("bytes", b)),
    )

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(kinds)
    def collect(case: tuple[str, Any]) -> None:
        made.append(case)

    collect()
    return made


def _traced(obj: dict[str, Any], n: int) -> Frame:
    """``obj`` with a unique msg_id and, where its item id is a string, a unique one, so that
    a row in the database can be traced to the frame that made it."""
    obj = dict(obj)
    obj["msg_id"] = f"fz{n}"
    item = None
    for key in ("pattern_id", "component_id"):
        if isinstance(obj.get(key), str):
            obj[key] = item = f"fz{n}-{obj[key]}"[:128]
    return json.dumps(obj).encode() + b"\n", obj["msg_id"], item


def _mutated(obj: dict[str, Any], pool: list[dict[str, Any]], n: int, rng: random.Random) -> Frame:
    """A mutation of ``obj``: fields dropped, or given values (or a type) from other cases; or
    its encoding with bytes flipped, cut or repeated (then untraced: its ids say ``mut``)."""
    obj = dict(obj)
    for _ in range(rng.randint(1, 3)):
        donor = rng.choice(pool)
        choice = rng.random()
        if choice < 0.3 and obj:
            obj.pop(rng.choice(sorted(obj)), None)
        elif choice < 0.8 and donor:
            key = rng.choice(sorted(donor))
            obj[rng.choice([key, *sorted(obj)] if obj else [key])] = donor[key]
        else:
            obj["type"] = donor.get("type", "PATTERN_SHARE")
    if rng.random() < 0.7:
        return _traced(obj, n)
    for key in ("pattern_id", "component_id", "msg_id"):
        if key in obj:
            obj[key] = f"mut{n}"
    data = bytearray(json.dumps(obj).encode())
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(data) + 1)
        op = rng.random()
        if op < 0.4 and data:
            data[min(at, len(data) - 1)] = rng.randrange(256)
        elif op < 0.7:
            del data[at : at + rng.randint(1, 8)]
        else:
            data[at:at] = data[at : at + rng.randint(1, 16)] * rng.randint(1, 3)
    return bytes(data).replace(b"\n", b" ") + b"\n", None, None


def make_frames(count: int, seed: int) -> list[Frame]:
    """``count`` fuzz frames: (bytes with a final newline, the msg_id it carries, the item id it
    would store). Up to :data:`POOL` come from the suite's strategies; the rest are seeded
    mutations of those (drawing from hypothesis costs milliseconds a case)."""
    made = _pool(min(count, POOL))
    rng = random.Random(seed)
    objects = [value for kind, value in made if kind == "obj"]
    frames: list[Frame] = []
    for n in range(count):
        kind, value = made[n] if n < len(made) else ("mutant", rng.choice(objects))
        if kind == "bytes":
            if value.strip():  # a blank line gets no answer at all (before login: no PONG)
                frames.append((value.replace(b"\n", b" ") + b"\n", None, None))
        elif kind == "obj":
            frames.append(_traced(value, n))
        else:
            frame = _mutated(value, objects, n, rng)
            if frame[0].strip():
                frames.append(frame)
    rng.shuffle(frames)
    return frames


class FuzzClient:
    """Sends fuzz frames one at a time, each followed by a PING; the frames up to its PONG are
    the answer to that frame. Reconnects (and logs in again) when the hub closes it."""

    def __init__(self, port: int, ai_id: str | None, token: str | None, source: str) -> None:
        self.port, self.ai_id, self.token, self.source = port, ai_id, token, source
        self.answers: dict[str, list[dict[str, Any]]] = {}  # msg_id -> frames with that ref
        self.errors: Counter[str] = Counter()
        self.closes = 0
        self.sync = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, limit=2**26, local_addr=(self.source, 0)
        )
        if self.ai_id is not None:
            self._writer.write(json.dumps({"ai_id": self.ai_id, "token": self.token}).encode())
            self._writer.write(b'\n{"type":"HELLO","specialization":"fuzz"}\n')
            await self._until(lambda f: f.get("type") == "STATE")

    async def _until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        assert self._reader is not None
        got = []
        while True:
            line = await asyncio.wait_for(self._reader.readline(), 30)
            if not line.endswith(b"\n"):
                raise ConnectionError("closed by the hub")
            frame = json.loads(line)
            got.append(frame)
            if done(frame):
                return got

    async def send(self, frame: bytes, msg_id: str | None) -> None:
        for _attempt in range(2):
            try:
                if self._writer is None or self._writer.is_closing():
                    await self._connect()
                assert self._writer is not None
                self.sync += 1
                ping = f"sync{self.sync}"
                self._writer.write(frame)
                if self.ai_id is not None:
                    self._writer.write(b'{"type":"PING","msg_id":"%s"}\n' % ping.encode())
                await self._writer.drain()
                if self.ai_id is None:  # in place of AUTH: one answer, then closed
                    replies = await self._until(lambda f: True)
                else:
                    replies = await self._until(lambda f, ping=ping: f.get("ref") == ping)
                self._note(replies, msg_id)
                return
            except (ConnectionError, OSError, TimeoutError, json.JSONDecodeError) as exc:
                self.closes += 1
                if self._writer is not None:
                    self._writer.transport.abort()
                self._writer = None
                if isinstance(exc, TimeoutError):
                    self.errors["no answer in 30 s"] += 1
                    return
                if self.ai_id is None:
                    return  # closed after its answer: expected before login

    def _note(self, replies: list[dict[str, Any]], msg_id: str | None) -> None:
        for reply in replies:
            if reply.get("type") in ("ERROR", "AUTH_FAILED"):
                self.errors[str(reply.get("code", "AUTH_FAILED"))] += 1
            if msg_id is not None and reply.get("ref") == msg_id:
                self.answers.setdefault(msg_id, []).append(reply)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()


async def honest_pinger(port: int, token: str, stop: asyncio.Event) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**26)
    writer.write(json.dumps({"ai_id": "honest", "token": token}).encode() + b"\n")
    writer.write(b'{"type":"HELLO","specialization":"networking","follow":[]}\n')
    await reader.readline()
    await reader.readline()
    sent = got = 0
    worst = 0.0
    lost = None
    while not stop.is_set():
        sent += 1
        started = time.monotonic()
        writer.write(b'{"type":"PING","msg_id":"h%d"}\n' % sent)
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(reader.readline(), 10))
                if frame.get("type") == "PONG":
                    break
        except (TimeoutError, ConnectionError, json.JSONDecodeError) as exc:
            lost = f"{type(exc).__name__} after {got} PONGs"
            break
        got += 1
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(0.02)
    writer.transport.abort()
    return {"pings": sent, "pongs": got, "worst_ms": worst * 1000, "lost": lost}


async def run_live(
    workdir: Path, count: int, seed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    log(f"fuzz: making {count:,} live frames")
    frames = make_frames(count, seed)
    db = workdir / "fuzz.db"
    ids = [f"fuzz-{i}" for i in range(4)] + ["honest"]
    tokens = await procs.register_tokens(db, ids)
    hub = await procs.start_hub(workdir, db, limits=True)
    clients = [FuzzClient(hub.port, ai_id, tokens[ai_id], "127.0.0.2") for ai_id in ids[:4]]
    clients.append(FuzzClient(hub.port, None, None, "127.0.0.3"))  # frames in place of AUTH
    stop = asyncio.Event()
    pinger = asyncio.create_task(honest_pinger(hub.port, tokens["honest"], stop))
    started = time.monotonic()

    async def drive(client: FuzzClient, mine: list[Frame]) -> None:
        for frame, msg_id, _item in mine:
            await client.send(frame, msg_id)

    # The client before login gets one in ten frames; the others share the rest.
    shares: list[list[Any]] = [[] for _ in clients]
    for n, case in enumerate(frames):
        shares[-1 if n % 10 == 9 else n % (len(clients) - 1)].append(case)
    try:
        await asyncio.gather(*(drive(c, s) for c, s in zip(clients, shares, strict=True)))
        await asyncio.sleep(0.5)  # a last commit
        alive = hub.alive()
    finally:
        stop.set()
        honest = await pinger
        for client in clients:
            client.close()
        exit_code = await hub.stop()
    seconds = time.monotonic() - started
    log_text = hub.log.read_text(errors="replace")
    answers = {k: v for c in clients for k, v in c.answers.items()}

    def items_answered(kind: str) -> set[str]:
        return {
            item
            for _frame, msg_id, item in frames
            if item and any(r.get("type") == kind for r in answers.get(msg_id or "", []))
        }

    errored = items_answered("ERROR")
    # What the hub said it stored: the id in each ACK of a share (a frame of another type may
    # carry a pattern_id too; its ACK says what it is of).
    acked = {
        str(r.get("id"))
        for replies in answers.values()
        for r in replies
        if r.get("type") == "ACK" and r.get("of") in ("PATTERN_SHARE", "OS_COMPONENT_SHARE")
    }
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = {row[0] for row in conn.execute("SELECT pattern_id FROM shared_patterns")}
        stored |= {row[0] for row in conn.execute("SELECT component_id FROM shared_components")}
    codes: Counter[str] = Counter()
    for client in clients:
        codes.update(client.errors)
    return {
        "frames": len(frames),
        "seconds": seconds,
        "hub_alive_at_end": alive,
        "hub_exit": exit_code,
        "tracebacks": log_text.count("Traceback"),
        "failed_to_handle": log_text.count("Failed to handle"),
        "codes": dict(codes),
        "reconnects": sum(c.closes for c in clients),
        "acked_items": len(acked),
        "rows_from_errored_frames": len(errored & stored),
        "acked_items_missing": len(acked - stored),
        "honest": honest,
    }


# ---------------------------------------------------------------------- report


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1]))


def tables(result: dict[str, Any]) -> str:
    props, live = result["properties"], result["live"]
    lines = [
        "| phase | cases | crashes | errors by code | time |",
        "|---|---|---|---|---|",
        f"| properties (hypothesis) | {props['cases']:,} | {props['failures']} falsified | "
        f"{_codes(props['codes'])} | {props['seconds']:.0f} s |",
    ]
    if live:
        crashes = int(not live["hub_alive_at_end"]) + live["tracebacks"]
        lines.append(
            f"| live hub | {live['frames']:,} frames | {crashes} (hub "
            f"{'running' if live['hub_alive_at_end'] else 'DEAD'} at the end, "
            f"{live['tracebacks']} tracebacks, {live['failed_to_handle']} frames it failed to "
            f"handle) | {_codes(live['codes'])} | {live['seconds']:.0f} s |"
        )
        h = live["honest"]
        lines += [
            "",
            f"Live hub: honest client {h['pongs']:,} PONGs for {h['pings']:,} PINGs (worst "
            f"{h['worst_ms']:,.0f} ms{', ' + h['lost'] if h['lost'] else ''}); "
            f"{live['acked_items']:,} fuzz shares ACKed ({live['acked_items_missing']} of them "
            f"missing from the database); rows from a frame that got an ERROR: "
            f"{live['rows_from_errored_frames']}; {live['reconnects']} reconnects.",
        ]
    for p in props["properties"]:
        if p["failure"]:
            lines.append(f"\nFalsified: `{p['property']}`: {p['failure']}")
    return "\n".join(lines)


def document(result: dict[str, Any], meta: dict[str, Any]) -> str:
    return f"""## Fuzzing (`bench/fuzz.py`)

- **Command:** `{meta["command"]}` ({meta["wall_s"] / 60:.1f} min); **date:** {meta["date"]};
  **commit:** {meta["commit"]}
- **Properties:** the five hypothesis properties of `tests/protocol/test_fuzz.py`,
  {result["properties"]["per_property"]:,} examples each (the suite runs 300). Errors by code
  are the `ProtocolError`s decoding raised (expected: that is the answer a bad frame gets).
- **Live hub:** a `kernal hub` process with default limits; frames from the same strategies
  (near-valid objects and shares with one field wrong or missing, with unique ids; arbitrary
  bytes; 1,000 drawn by hypothesis, the rest seeded mutations of them: fields dropped or
  swapped, bytes flipped, cut or repeated) from 4 logged-in clients, and one in ten in place
  of AUTH from another address; each frame followed by a PING whose PONG ends its answer.
  "Rows from a frame that got an ERROR" looks up every refused frame's unique item id in the
  database.

{tables(result)}
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/fuzz.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000, help="property cases in all")
    parser.add_argument("--live", type=int, default=20_000, help="frames at the live hub")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-write", action="store_true", help=f"leave {DOC.name} alone")
    args = parser.parse_args()
    procs.pin_self(procs.LOAD_CORE)
    meta: dict[str, Any] = {
        "command": shlex.join(["bench/fuzz.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": procs_commit(),
    }

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = time.monotonic()
    result: dict[str, Any] = {"properties": run_properties(args.cases, log), "live": None}
    if args.live:
        with tempfile.TemporaryDirectory(prefix="kernal-fuzz-") as tmp:
            result["live"] = asyncio.run(run_live(Path(tmp), args.live, args.seed, log))
    meta["wall_s"] = time.monotonic() - started
    if args.out is not None:
        args.out.write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    print(tables(result))
    print(f"\n{meta['command']}: {meta['wall_s']:.0f} s")
    if not args.no_write and args.cases >= 100_000:
        report.write_section(DOC, "bench/fuzz.py", document(result, meta))
        print(f"wrote {DOC.relative_to(procs.ROOT)}")


def procs_commit() -> str:
    import subprocess

    try:
        return subprocess.run(
            ["git", "-C", str(procs.ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


if __name__ == "__main__":
    main()
