"""WeChat callback load: encrypted text messages from N concurrent clients over loopback.

Measures, in one run and on the same server stack (Starlette on uvicorn, each server in its own
process), first a bare wechatpy decrypt-and-echo endpoint, then `gigunion serve` with the WeChat
channel (a real turn per message: session load and save, dedupe marker, one SQLite commit). Each
client is one WeChat user that sends its next message when the answer to the last one arrives
(closed loop), every message with a new MsgId. The load generator is aiohttp's client.

    .venv/bin/python bench/wechat.py --clients 100 --seconds 10

Prints requests/s and p50/p99 latency of both, their ratio, and the environment. A third server, the
WeChat channel in front of a canned turn, shows what the channel itself costs. Last, the same clients
pause between messages (`--think`, as people do: reading the answer, typing the next one), which
gives the latency users feel while the server is busy but not flooded. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKEN = "bench-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wxbench000000000"
HOST = "127.0.0.1"


# -- the bare endpoint (run with --bare-server in its own process) ------------------------------------
def bare_app():  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route
    from wechatpy import parse_message
    from wechatpy.crypto import WeChatCrypto
    from wechatpy.replies import create_reply

    crypto = WeChatCrypto(TOKEN, AES_KEY, APPID)

    async def wechat(request: Request) -> Response:
        q = request.query_params
        xml = crypto.decrypt_message(await request.body(), q["msg_signature"], q["timestamp"], q["nonce"])
        msg = parse_message(xml)
        reply = create_reply(msg.content, msg, render=True)
        return Response(crypto.encrypt_message(reply, q["nonce"], q["timestamp"]), media_type="application/xml")

    async def healthz(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/wechat", wechat, methods=["POST"]), Route("/healthz", healthz)])


def run_adapter_server(port: int, workdir: str) -> None:
    """The WeChat channel in front of a canned turn: what the channel costs without the engine."""
    import uvicorn

    from bot.config import Settings
    from bot.engine.messages import OutButton, Outgoing
    from bot.handlers.wechat import wechat_channel
    from bot.runtime import running_bot, settle_heap
    from bot.web import create_app

    answer = [Outgoing("请问要办什么？", (OutButton("加入工会", "a|open:join"), OutButton("English", "a|lang")))]

    class CannedTurns:
        async def handle(self, incoming):  # type: ignore[no-untyped-def]
            return answer

    async def serve() -> None:
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{workdir}/adapter.db",
            secret_key="bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            wechat_token=TOKEN,
            wechat_aes_key=AES_KEY,
            wechat_appid=APPID,
            wechat_api_url=f"http://{HOST}:9/cgi-bin/",
        )
        async with running_bot(settings) as (app, _), wechat_channel(app, CannedTurns()) as routes:  # type: ignore[arg-type]
            web = create_app(routes)
            settle_heap()  # as `gigunion serve` does
            await uvicorn.Server(uvicorn.Config(web, host=HOST, port=port, log_level="warning")).serve()

    asyncio.run(serve())


def run_bare_server(port: int) -> None:
    import uvicorn

    # The same uvicorn settings `gigunion serve` uses (bot/cli.py): defaults, log level warning.
    uvicorn.Server(uvicorn.Config(bare_app(), host=HOST, port=port, log_level="warning")).run()


# -- servers ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_servers(workdir: Path) -> tuple[list[subprocess.Popen], int, int, int]:
    bare_port, bot_port, adapter_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        "GIGUNION_SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "GIGUNION_LOG_LEVEL": "WARNING",
        "GIGUNION_WECHAT_TOKEN": TOKEN,
        "GIGUNION_WECHAT_AES_KEY": AES_KEY,
        "GIGUNION_WECHAT_APPID": APPID,
        # No AppSecret, so no customer-service sender; and an API base on loopback all the same.
        "GIGUNION_WECHAT_API_URL": f"http://{HOST}:9/cgi-bin/",
    }
    env.pop("GIGUNION_CONFIG", None)
    env.pop("GIGUNION_WECHAT_SECRET", None)
    bare = subprocess.Popen([sys.executable, __file__, "--bare-server", str(bare_port)], cwd=ROOT)
    adapter = subprocess.Popen(
        [sys.executable, __file__, "--adapter-server", str(adapter_port), "--workdir", str(workdir)], cwd=ROOT
    )
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--host", HOST, "--port", str(bot_port)], cwd=workdir, env=env
    )
    return [bare, bot, adapter], bare_port, bot_port, adapter_port


async def wait_ready(port: int, processes: list[subprocess.Popen]) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a server exited during start-up")
            try:
                async with session.get(f"http://{HOST}:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"server on port {port} did not start")


# -- load ------------------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    checked: int = 0
    server_cpu: float = 0.0  # seconds of CPU the server process used while measured
    client_cpu: float = 0.0  # and the load generator

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


_msg_ids = itertools.count(8_000_000_000_000_000_001)


def encrypted(openid: str, content: str) -> tuple[dict[str, str], bytes]:
    from wechatpy.crypto import PrpCrypto, WeChatCrypto, _get_signature

    key = WeChatCrypto(TOKEN, AES_KEY, APPID).key
    ts, nonce = str(int(time.time())), str(next(_msg_ids) % 10**9)
    inner = (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{next(_msg_ids)}</MsgId></xml>"
    )
    encrypt = PrpCrypto(key).encrypt(inner, APPID).decode()
    params = {"timestamp": ts, "nonce": nonce, "encrypt_type": "aes"}
    params["msg_signature"] = _get_signature(TOKEN, ts, nonce, encrypt)
    body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return params, body.encode()


def opens(xml: str) -> bool:
    """Each user's first answer and every 50th are decrypted: the figures count only answers that really are replies."""
    import xmltodict
    from wechatpy.crypto import WeChatCrypto

    outer = xmltodict.parse(xml)["xml"]
    inner = WeChatCrypto(TOKEN, AES_KEY, APPID).decrypt_message(
        xml, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]
    )
    return "<Content>" in inner


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    name: str, port: int, clients: int, seconds: float, warmup: float, server: int, think: float = 0.0
) -> Result:
    import aiohttp

    result = Result(name, clients, seconds)
    url = f"http://{HOST}:{port}/wechat"
    # Encrypted before the clock starts, so the load generator spends its share of the CPU on HTTP only.
    per_client = int(seconds + warmup + 1) * 40
    messages = [[encrypted(f"oBench{name[:4]}{i:05d}", "菜单") for _ in range(per_client)] for i in range(clients)]
    started = time.perf_counter()
    measure_from, stop_at = started + warmup, started + warmup + seconds

    async def account() -> None:
        await asyncio.sleep(warmup)
        server_cpu, own_cpu = cpu_seconds(server), time.process_time()
        await asyncio.sleep(seconds)
        result.server_cpu = cpu_seconds(server) - server_cpu
        result.client_cpu = time.process_time() - own_cpu

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def user(i: int) -> None:
            openid = f"oBench{name[:4]}{i:05d}"
            n = 0
            await asyncio.sleep(think * i / clients)  # the first messages spread over one think time
            while (now := time.perf_counter()) < stop_at:
                params, body = messages[i].pop() if messages[i] else encrypted(openid, "菜单")
                t0 = time.perf_counter()
                try:
                    async with session.post(url, params=params, data=body) as response:
                        text = await response.text()
                        ok = response.status == 200 and "<Encrypt>" in text
                except aiohttp.ClientError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    if not ok:
                        result.errors += 1
                        continue
                    result.latencies.append(t1 - t0)
                    n += 1
                    if n == 1 or n % 50 == 0:
                        result.checked += 1
                        if not opens(text):
                            result.errors += 1
                del now
                if think:
                    await asyncio.sleep(think)

        await asyncio.gather(account(), *(user(i) for i in range(clients)))
    return result


# -- report ----------------------------------------------------------------------------------------------------
def environment(workdir: Path) -> list[str]:
    import aiohttp
    import uvicorn

    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    parser = "httptools" if find_spec("httptools") else "h11"
    sqlite = sqlite_modes(workdir / "bench.db")
    return [
        f"python {platform.python_version()} on {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        f"server: Starlette + uvicorn {uvicorn.__version__} (loop=auto -> {loop}, http=auto -> {parser}), "
        "one process each, log level warning",
        f"load generator: aiohttp {aiohttp.__version__} client, separate process, closed loop, 127.0.0.1",
        f"bot database: {sqlite}",
    ]


def sqlite_modes(path: Path) -> str:
    from storage.db import Database

    async def read() -> str:
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            async with db.engine.connect() as conn:
                journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
                sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
        finally:
            await db.close()
        return f"SQLite journal_mode={journal}, synchronous={ {0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA'}[sync] }"

    return asyncio.run(read())


def line(r: Result) -> str:
    return (
        f"{r.name:<22} {r.clients:>4} clients  {r.rps:>8.0f} req/s  p50 {r.pct(50):>6.1f} ms  "
        f"p99 {r.pct(99):>6.1f} ms  max {r.pct(100):>6.1f} ms  errors {r.errors}  (decrypted {r.checked})  "
        f"CPU a request: server {r.server_cpu / max(1, len(r.latencies)) * 1000:.2f} ms, "
        f"load generator {r.client_cpu / max(1, len(r.latencies)) * 1000:.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0, help="measured time per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--think", type=float, default=1.0, help="seconds between a client's messages (paced runs)")
    ap.add_argument("--single-seconds", type=float, default=3.0, help="one client at a time (0 to skip)")
    ap.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--adapter-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_server:
        run_bare_server(args.bare_server)
        return
    if args.adapter_server:
        run_adapter_server(args.adapter_server, args.workdir)
        return

    with tempfile.TemporaryDirectory(prefix="gigunion-bench-") as tmp:
        workdir = Path(tmp)
        processes, bare_port, bot_port, adapter_port = start_servers(workdir)
        try:
            bare, bot, adapter = (p.pid for p in processes)

            async def run() -> list[Result]:
                await wait_ready(bare_port, processes)
                await wait_ready(bot_port, processes)
                await wait_ready(adapter_port, processes)
                results = []
                if args.single_seconds:
                    results.append(await load("bare, one at a time", bare_port, 1, args.single_seconds, 0.5, bare))
                    results.append(await load("bot, one at a time", bot_port, 1, args.single_seconds, 0.5, bot))
                clients, seconds, warmup = args.clients, args.seconds, args.warmup
                results.append(await load("channel, canned turn", adapter_port, clients, seconds, warmup, adapter))
                results.append(await load("bare decrypt+echo", bare_port, clients, seconds, warmup, bare))
                results.append(await load("gigunion serve", bot_port, clients, seconds, warmup, bot))
                paced = f"{args.think:g}s think"
                results.append(await load(f"bare, {paced}", bare_port, clients, seconds, warmup, bare, args.think))
                results.append(await load(f"bot, {paced}", bot_port, clients, seconds, warmup, bot, args.think))
                return results

            results = asyncio.run(run())
        finally:
            for p in processes:
                p.terminate()
            for p in processes:
                p.wait(timeout=15)
        print("WeChat callback benchmark (encrypted text messages, safe mode)")
        for env_line in environment(workdir):
            print("  " + env_line)
        for r in results:
            print(line(r))
        adapter, bare, bot, _, paced = results[-5:]
        print(f"channel alone (canned turn) / bare: {adapter.rps / bare.rps:.2f}")
        print(
            f"throughput ratio bot/bare: {bot.rps / bare.rps:.2f} (target >= 0.5); "
            f"bot p99 {bot.pct(99):.1f} ms at {bot.clients} clients (target < 100 ms); "
            f"p50 spread {statistics.median(bot.latencies) / statistics.median(bare.latencies):.1f}x"
        )
        print(f"with {args.think:g}s think time: bot p99 {paced.pct(99):.1f} ms at {paced.clients} clients")


if __name__ == "__main__":
    main()
