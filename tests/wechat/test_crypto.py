"""Signature and encryption against Tencent's own published sample values (not ones we produced)."""

from __future__ import annotations

import pytest
import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.utils import check_signature

from bot.engine.messages import Kind
from bot.handlers.wechat_inbound import BadXml, UnsafeXml, checked_xml, to_inbound
from tests.wechat.vectors import official_vectors

VECTORS = official_vectors()


class FixedPrefix(PrpCrypto):
    """The 16 random bytes in front of each message, fixed to the sample's, so the output can be compared."""

    def __init__(self, key: bytes, prefix: str) -> None:
        super().__init__(key)
        self.prefix = prefix

    def get_random_string(self) -> str:
        return self.prefix


@pytest.mark.parametrize("sample", VECTORS["decrypt"], ids=lambda s: s["name"])
def test_decrypt_the_official_sample(sample: dict) -> None:
    check_signature(sample["token"], sample["signature"], sample["timestamp"], sample["nonce"])
    crypto = WeChatCrypto(sample["token"], sample["encoding_aes_key"], sample["appid"])
    xml = crypto.decrypt_message(sample["body_xml"], sample["msg_signature"], sample["timestamp"], sample["nonce"])
    msg = parse_message(xml)
    expect = sample["expect"]
    assert msg.type == expect["msg_type"] and msg.content == expect["content"]
    assert msg.source == expect["from_user"] and msg.target == expect["to_user"]
    assert str(msg.id) == expect["msg_id"] and msg.time == expect["create_time"]
    incoming = to_inbound(msg).incoming
    assert incoming.kind is Kind.TEXT and incoming.text == "abcdteT"
    assert incoming.user_key == f"wechat:{expect['from_user']}" and incoming.dedupe_key == f"msg:{expect['msg_id']}"


@pytest.mark.parametrize("sample", VECTORS["decrypt"], ids=lambda s: s["name"])
def test_the_sample_refused_with_a_wrong_signature_or_appid(sample: dict) -> None:
    crypto = WeChatCrypto(sample["token"], sample["encoding_aes_key"], sample["appid"])
    with pytest.raises(InvalidSignatureException):
        crypto.decrypt_message(sample["body_xml"], "0" * 40, sample["timestamp"], sample["nonce"])
    other = WeChatCrypto(sample["token"], sample["encoding_aes_key"], "wxsomebodyelse000")
    with pytest.raises(InvalidAppIdException):
        other.decrypt_message(sample["body_xml"], sample["msg_signature"], sample["timestamp"], sample["nonce"])
    with pytest.raises(InvalidSignatureException):
        check_signature(sample["token"], sample["signature"], sample["timestamp"], "1")


@pytest.mark.parametrize("sample", VECTORS["encrypt"], ids=lambda s: s["name"])
def test_encrypt_reproduces_the_official_sample(sample: dict) -> None:
    crypto = WeChatCrypto(sample["token"], sample["encoding_aes_key"], sample["appid"])
    fixed = FixedPrefix(crypto.key, sample["random_prefix"])
    assert fixed.encrypt(sample["plaintext"], sample["appid"]).decode() == sample["expect_encrypt"]
    assert PrpCrypto(crypto.key).decrypt(sample["expect_encrypt"], sample["appid"]) == sample["plaintext"]


@pytest.mark.parametrize("sample", VECTORS["encrypt"], ids=lambda s: s["name"])
def test_an_encrypted_reply_opens_with_its_own_signature(sample: dict) -> None:
    crypto = WeChatCrypto(sample["token"], sample["encoding_aes_key"], sample["appid"])
    out = crypto.encrypt_message(f"<xml><Content>{sample['plaintext']}</Content></xml>", sample["nonce"])
    outer = xmltodict.parse(out)["xml"]
    inner = crypto.decrypt_message(out, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    assert sample["plaintext"] in inner


def test_xml_with_a_dtd_is_refused_in_any_encoding() -> None:
    dtd = '<!DOCTYPE x [<!ENTITY a "aaaa">]><xml><FromUserName>o</FromUserName><Content>&a;</Content></xml>'
    with pytest.raises(UnsafeXml):
        checked_xml(dtd.encode())
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
        try:
            text = checked_xml(dtd.encode(encoding))
        except (BadXml, UnsafeXml):
            continue
        with pytest.raises(Exception):  # noqa: B017 - what matters is that nothing parses, let alone expands
            parse_message(text)
    ordinary = "<xml><FromUserName><![CDATA[o]]></FromUserName><Content><![CDATA[<!x>]]></Content></xml>"
    assert checked_xml(ordinary.encode()) == ordinary
