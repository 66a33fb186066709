"""Reading and masking payout details: ID numbers by GB 11643's check character, bank accounts, Alipay
accounts, and how each is shown."""

from __future__ import annotations

import pytest

from bot.flows.claim import amount_problem
from bot.privacy import mask_account, mask_id_number
from bot.validation import alipay_account, bank_account, cn_id_number

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def with_check(first17: str) -> str:
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("11010519491231002X", "11010519491231002X"),  # the standard's own example
        ("11010519491231002x", "11010519491231002X"),
        ("110105 19491231 002X", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２Ｘ", "11010519491231002X"),  # typed with a full-width keyboard
        (with_check("44030419851201234"), with_check("44030419851201234")),
    ],
)
def test_id_numbers_with_the_right_check_character_are_read(typed: str, read: str) -> None:
    assert cn_id_number(typed) == read


@pytest.mark.parametrize(
    "typed",
    [
        "110105194912310021",  # wrong check character
        "11010519491231002",  # 17 characters
        "11010519491231002XX",
        with_check("11010519491332002"),  # 32 December
        with_check("11010518001231002"),  # born in 1800
        with_check("01010519491231002"),  # no region starts with 0
        "11010519491231X02X",
        "",
        "身份证号忘了",
    ],
)
def test_id_numbers_that_do_not_check_out_are_refused(typed: str) -> None:
    assert cn_id_number(typed) is None


def test_bank_accounts_are_12_to_19_digits_spaces_allowed() -> None:
    assert bank_account("6222 0202 0000 1234 567") == "6222020200001234567"
    assert bank_account("6222-0202-0000-1234") == "6222020200001234"
    assert bank_account("６２２２０２０２００００１２") == "62220202000012"
    for bad in ("62220202000", "62220202000012345678", "6222 0202 abcd 1234", "", "卡号"):
        assert bank_account(bad) is None, bad


def test_alipay_accounts_are_a_mobile_or_an_email() -> None:
    assert alipay_account("138 0013 8000") == "13800138000"
    assert alipay_account("+86 13800138000") == "13800138000"
    assert alipay_account(" Rider.Wang@QQ.com ") == "rider.wang@qq.com"
    for bad in ("12345678901", "rider@", "@qq.com", "rider wang@qq.com", "rider@qq", ""):
        assert alipay_account(bad) is None, bad


def test_payout_details_are_shown_masked() -> None:
    assert mask_account("6222020200001234") == "6222********1234"
    assert mask_account("6222020200001234567") == "6222***********4567"
    assert mask_account("13800138000") == "138****8000"
    assert mask_account("rider.wang@qq.com") == "r***@qq.com"
    assert mask_id_number("330106199001011234") == "3301**********1234"
    assert mask_id_number("11010519491231002X") == "1101**********002X"
    assert "*" * 6 == mask_account("123456")


@pytest.mark.parametrize(
    ("typed", "key"),
    [
        ("-5", "claim.amount_negative"),
        ("0", "claim.amount_zero"),
        ("12.345", "claim.amount_decimals"),
        ("一百块", "claim.amount_not_number"),
        ("", "claim.amount_not_number"),
    ],
)
def test_a_refused_amount_is_told_what_is_wrong(typed: str, key: str) -> None:
    assert amount_problem(typed) == key
