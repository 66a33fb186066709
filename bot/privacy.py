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
