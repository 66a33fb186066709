"""How personal values are shown when they must be shown at all."""


def mask_phone(phone: str) -> str:
    digits = phone[-11:] if len(phone) >= 11 else phone
    return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 8 else "****"


def mask_name(name: str) -> str:
    if not name:
        return ""
    if name.isascii():
        parts = name.split()
        return " ".join(p[0] + "*" * (len(p) - 1) for p in parts)
    return name[0] + "*" * max(1, len(name) - 1)


def mask_account(account: str) -> str:
    """A bank card as "6222********1234", a mobile as "138****8000", an e-mail as "z***@qq.com": enough
    for the owner to recognise it, not enough to use it."""
    if "@" in account:
        local, _, domain = account.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if len(account) == 11 and account.startswith("1"):
        return mask_phone(account)
    if len(account) <= 8:
        return "*" * len(account)
    return account[:4] + "*" * (len(account) - 8) + account[-4:]


def mask_id_number(id_number: str) -> str:
    """ "330106199001011234" -> "3301**********1234"."""
    if len(id_number) <= 8:
        return "*" * len(id_number)
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
