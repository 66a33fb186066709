"""The WeChat API client, the outbox deliverer and the `gigunion wechat` commands, against the fake API."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from bot.engine.messages import OutButton, Outgoing, Request
from bot.runtime import running_bot
from bot.services.outbox import OutboxSender, enqueue
from bot.services.wechat_api import WeChatApi, WeChatError
from bot.services.wechat_deliver import WeChatDeliverer
from storage.outbox import FAILED, SENT, UNREACHABLE
from tests.fakes.wechat_api import APPID, SECRET, FakeWeChatApi
from tests.fakes.wechat_push import AES_KEY, TOKEN, wechat_settings

ROOT = Path(__file__).resolve().parents[2]
TEXT = {"msgtype": "text", "text": {"content": "你好"}}


@pytest.fixture
async def wired(make_settings, fake):  # type: ignore[no-untyped-def]
    async with running_bot(wechat_settings(make_settings, fake.base)) as (app, _), httpx.AsyncClient() as client:
        yield app, WeChatApi(app, client)


async def test_expired_token_forces_one_refresh_and_one_retry(wired, fake) -> None:  # type: ignore[no-untyped-def]
    _, api = wired
    await api.send_custom("o1", TEXT)
    assert len(fake.to("token")) == 1
    fake.expire_token()
    await asyncio.gather(*(api.send_custom(f"o{i}", TEXT) for i in range(5)))
    assert len(fake.to("token")) == 2  # five calls met 40001; one refresh served them all
    sends = fake.to("message/custom/send")
    assert len(sends) == 11 and all(c.token == fake.valid_token for c in sends[-5:])
    # 42001 (expired) is treated the same way; a second refusal is not retried again.
    fake.fail_once("message/custom/send", 42001)
    await api.send_custom("o9", TEXT)
    fake.fail_once("message/custom/send", 40001)
    fake.fail_once("message/custom/send", 40001)
    with pytest.raises(WeChatError) as refused:
        await api.send_custom("o9", TEXT)
    assert refused.value.errcode == 40001 and len(fake.to("token")) == 4


async def test_the_token_is_shared_through_the_database(wired, fake) -> None:  # type: ignore[no-untyped-def]
    app, api = wired
    await api.send_custom("o1", TEXT)
    async with httpx.AsyncClient() as client:
        other_process = WeChatApi(app, client)
        await other_process.send_custom("o2", TEXT)
    assert len(fake.to("token")) == 1
    async with app.db.transaction() as tx:
        assert (await tx.tokens.get(f"wechat:{APPID}")).value == fake.valid_token


async def deliver(app, api, message: Outgoing, user: str = "oRider1") -> str:  # type: ignore[no-untyped-def]
    async with app.db.transaction() as tx:
        item = await enqueue(tx, f"wechat:{user}", message, app.now())
    await OutboxSender(app, WeChatDeliverer(app, api)).run_once()
    async with app.db.transaction() as tx:
        return await tx.outbox.status_of(item)


async def test_outbox_message_with_choices_and_a_phone_request(wired, fake) -> None:  # type: ignore[no-untyped-def]
    app, api = wired
    message = Outgoing(
        text="请问要办什么？",
        buttons=(OutButton("加入工会", "ab|open:join"), OutButton("English", "ab|lang")),
        requests=(Request.CONTACT,),
        image=b"\x89PNG fake",
    )
    assert await deliver(app, api, message) == SENT
    text, image = (c.json for c in fake.to("message/custom/send"))
    content = text["text"]["content"]
    assert content.startswith("请问要办什么？") and "回复数字" in content
    assert "1 加入工会\n2 English" in content and "11 位手机号" in content
    assert image["msgtype"] == "image" and image["image"]["media_id"].startswith("media-")


async def test_msgmenu_when_the_account_has_it(make_settings, fake) -> None:  # type: ignore[no-untyped-def]
    settings = wechat_settings(make_settings, fake.base, extra={"wechat": {"msgmenu": True}})
    async with running_bot(settings) as (app, _), httpx.AsyncClient() as client:
        message = Outgoing(
            text="Pick one", buttons=(OutButton("Agree", "x|agree"), OutButton("Decline", "x|no")), lang="en"
        )
        assert await deliver(app, WeChatApi(app, client), message) == SENT
    text, menu = (c.json for c in fake.to("message/custom/send"))
    assert text["text"]["content"] == "Pick one"
    assert menu["msgtype"] == "msgmenu" and menu["msgmenu"]["head_content"] == "Tap your choice:"
    assert menu["msgmenu"]["list"] == [{"id": "1", "content": "Agree"}, {"id": "2", "content": "Decline"}]


async def test_outside_the_window_a_template_message_goes_instead(make_settings, fake) -> None:  # type: ignore[no-untyped-def]
    templates = {"notice": {"id": "TPL-notice", "field": "thing1", "data": {"first": "工会通知"}, "url": "https://u"}}
    settings = wechat_settings(make_settings, fake.base, extra={"wechat": {"templates": templates}})
    async with running_bot(settings) as (app, _), httpx.AsyncClient() as client:
        api = WeChatApi(app, client)
        fake.fail_once("message/custom/send", 45015)
        assert await deliver(app, api, Outgoing(text="您的理赔已通过。")) == SENT
        (template,) = fake.to("message/template/send")
        assert template.json["template_id"] == "TPL-notice" and template.json["url"] == "https://u"
        assert template.json["data"] == {"first": {"value": "工会通知"}, "thing1": {"value": "您的理赔已通过。"}}
        fake.fail_once("message/custom/send", 43004)
        assert await deliver(app, api, Outgoing(text="活动通知"), user="oGone") == UNREACHABLE


async def test_outside_the_window_without_a_template_it_fails_plainly(wired, fake) -> None:  # type: ignore[no-untyped-def]
    app, api = wired
    fake.fail_once("message/custom/send", 45015)
    assert await deliver(app, api, Outgoing(text="活动通知")) == FAILED
    assert fake.to("message/template/send") == []


async def cli(tmp_path: Path, fake: FakeWeChatApi, *args: str, config: str | None = None) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "GIGUNION_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
        "GIGUNION_SECRET_KEY": "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "GIGUNION_WECHAT_TOKEN": TOKEN,
        "GIGUNION_WECHAT_AES_KEY": AES_KEY,
        "GIGUNION_WECHAT_APPID": APPID,
        "GIGUNION_WECHAT_SECRET": SECRET,
        "GIGUNION_WECHAT_API_URL": fake.base,
    }
    if config:
        (tmp_path / "gigunion.toml").write_text(config, "utf-8")
        env["GIGUNION_CONFIG"] = str(tmp_path / "gigunion.toml")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode, out.decode(), err.decode()


async def test_menu_push_sends_the_default_menu(tmp_path, fake) -> None:  # type: ignore[no-untyped-def]
    code, out, err = await cli(tmp_path, fake, "wechat", "menu", "push")
    assert code == 0, err
    (call,) = fake.to("menu/create")
    top = call.json["button"]
    assert 1 <= len(top) <= 3 and all(len(b.get("sub_button", [])) <= 5 for b in top)
    assert top[0] == {"type": "click", "name": "加入工会", "key": "join"}
    assert top[1]["name"] == "服务"
    assert top[1]["sub_button"][0] == {"type": "click", "name": "我的会员证", "key": "card"}
    assert {"type": "click", "name": "理赔申请", "key": "claim"} in top[1]["sub_button"]
    assert top[2]["name"] == "更多" and {"type": "click", "name": "English", "key": "lang"} in top[2]["sub_button"]
    assert "menu pushed" in out


async def test_menu_push_refuses_a_menu_wechat_would_refuse(tmp_path, fake) -> None:  # type: ignore[no-untyped-def]
    config = "[wechat.menu]\n" + "".join(f'[[wechat.menu.button]]\nname = "b{i}"\nkey = "k{i}"\n' for i in range(4))
    code, _, err = await cli(tmp_path, fake, "wechat", "menu", "push", config=config)
    assert code == 1 and "1 to 3 top buttons" in err and fake.to("menu/create") == []
    config = (
        '[[wechat.menu.button]]\nname = "入会"\nkey = "join"\n'
        '[[wechat.menu.button]]\nname = "工会"\n'
        '[[wechat.menu.button.sub_button]]\nname = "官网"\nurl = "https://union.example"\n'
    )
    code, _, err = await cli(tmp_path, fake, "wechat", "menu", "push", config=config)
    assert code == 0, err
    sub = fake.to("menu/create")[0].json["button"][1]["sub_button"][0]
    assert sub == {"name": "官网", "url": "https://union.example", "type": "view"}


async def test_qrcode_makes_a_temporary_scene_code(tmp_path, fake) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "qr.png"
    code, stdout, err = await cli(
        tmp_path, fake, "wechat", "qrcode", "station-12", "--temporary", "7", "--out", str(out)
    )
    assert code == 0, err
    (call,) = fake.to("qrcode/create")
    assert call.json == {
        "action_name": "QR_STR_SCENE",
        "expire_seconds": 7 * 86400,
        "action_info": {"scene": {"scene_str": "station-12"}},
    }
    assert fake.to("showqrcode")[0].params["ticket"].startswith("TICKET-")
    assert out.read_bytes().startswith(b"\x89PNG") and "expires in 7 days" in stdout
    code, _, err = await cli(tmp_path, fake, "wechat", "qrcode", "no spaces allowed", "--out", str(out))
    assert code == 1 and "source" in err
    code, _, _ = await cli(tmp_path, fake, "wechat", "qrcode", "market", "--out", str(out))
    assert code == 0 and fake.to("qrcode/create")[-1].json["action_name"] == "QR_LIMIT_STR_SCENE"


async def test_qrcode_drawn_here_when_the_picture_cannot_be_fetched(tmp_path, fake) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "qr.png"
    config = '[wechat]\nshowqrcode_url = "http://127.0.0.1:9/showqrcode"\n'
    code, stdout, err = await cli(tmp_path, fake, "wechat", "qrcode", "station-3", "--out", str(out), config=config)
    assert code == 0, err
    assert out.read_bytes().startswith(b"\x89PNG") and "http://weixin.qq.com/q/fake" in stdout
