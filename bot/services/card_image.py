"""The membership card as a picture: a QR code of the verification code, for channels that show images."""

from __future__ import annotations

import io
from functools import lru_cache

import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from bot.services.crypto import CARD_QR_PREFIX

# Pillow's built-in bitmap font: Latin glyphs only, and ten times faster to draw than its FreeType one.
_FONT = ImageFont.load_default_imagefont()
MODULE = 6  # pixels a side for each QR module on the card


def _qr(data: str, scale: int, quiet_zone: bool) -> Image.Image:
    # ZXing's encoder (C++) takes about a fifth of the time of the pure-Python `qrcode` package, which
    # was a third of the whole cost of the turn that finishes joining. Medium error correction.
    code = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    bitmap = code.to_image(scale=scale, add_quiet_zones=quiet_zone)
    height, width = bitmap.shape
    return Image.frombuffer("L", (width, height), bytes(bitmap), "raw", "L", 0, 1)


@lru_cache(maxsize=1024)
def card_png(code: str, member_number: str) -> bytes:
    qr_img = _qr(CARD_QR_PREFIX + code, MODULE, quiet_zone=False)
    # The picture carries the number and the code; the name and union come in the text beside it.
    border = 2 * MODULE
    width = max(qr_img.width + 2 * border, 240)
    top = qr_img.height + 2 * border
    card = Image.new("L", (width, top + 44), 255)
    card.paste(qr_img, ((width - qr_img.width) // 2, border))
    draw = ImageDraw.Draw(card)
    draw.text((10, top + 6), member_number, fill=0, font=_FONT)
    draw.text((10, top + 24), f"{code[:4]}-{code[4:]}", fill=0, font=_FONT)
    out = io.BytesIO()
    card.convert("1", dither=Image.Dither.NONE).save(out, format="PNG")
    return out.getvalue()


def qr_png(data: str, box_size: int = 10) -> bytes:
    out = io.BytesIO()
    _qr(data, box_size, quiet_zone=True).save(out, format="PNG")
    return out.getvalue()
