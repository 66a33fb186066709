"""The membership card as a picture: a QR code of the verification code, for channels that show images."""

from __future__ import annotations

import io
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont

from bot.services.crypto import CARD_QR_PREFIX

# Pillow's built-in bitmap font: Latin glyphs only, and ten times faster to draw than its FreeType one.
_FONT = ImageFont.load_default_imagefont()


@lru_cache(maxsize=1024)
def card_png(code: str, member_number: str) -> bytes:
    # A fixed version and mask: choosing them costs more than drawing the card, and any mask scans.
    # Version 2 holds the 22 characters with medium error correction.
    qr = qrcode.QRCode(version=2, border=2, error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=0)
    qr.add_data(CARD_QR_PREFIX + code, optimize=0)
    qr.make(fit=False)
    # Drawn from the module matrix in one go: qrcode's own renderer draws each module separately.
    matrix = qr.get_matrix()
    n = len(matrix)
    modules = Image.frombytes("L", (n, n), bytes(0 if dark else 255 for row in matrix for dark in row))
    qr_img = modules.resize((n * 6, n * 6), Image.Resampling.NEAREST)
    # The picture carries the number and the code; the name and union come in the text beside it.
    width = max(qr_img.width, 240)
    card = Image.new("L", (width, qr_img.height + 44), 255)
    card.paste(qr_img, ((width - qr_img.width) // 2, 0))
    draw = ImageDraw.Draw(card)
    draw.text((10, qr_img.height + 6), member_number, fill=0, font=_FONT)
    draw.text((10, qr_img.height + 24), f"{code[:4]}-{code[4:]}", fill=0, font=_FONT)
    out = io.BytesIO()
    card.convert("1", dither=Image.Dither.NONE).save(out, format="PNG")
    return out.getvalue()


def qr_png(data: str, box_size: int = 10) -> bytes:
    img = qrcode.make(data, box_size=box_size, border=2)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
