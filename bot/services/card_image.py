"""The membership card as a picture: a QR code of the verification code, for channels that show images."""

from __future__ import annotations

import io

import qrcode
from PIL import Image, ImageDraw


def card_png(code: str, member_number: str) -> bytes:
    qr = qrcode.QRCode(border=2, box_size=8, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(f"GIGUNION-CARD:{code}")
    qr.make(fit=True)
    qr_img = qr.make_image(fill_color="black", back_color="white").convert("RGB")
    # The default bitmap font has Latin glyphs only, so the picture carries the number and the code;
    # the name and union come in the text message beside it.
    width = max(qr_img.width, 320)
    card = Image.new("RGB", (width, qr_img.height + 56), "white")
    card.paste(qr_img, ((width - qr_img.width) // 2, 0))
    draw = ImageDraw.Draw(card)
    draw.text((12, qr_img.height + 6), member_number, fill="black")
    draw.text((12, qr_img.height + 28), f"{code[:4]}-{code[4:]}", fill="black")
    out = io.BytesIO()
    card.save(out, format="PNG", optimize=True)
    return out.getvalue()


def qr_png(data: str, box_size: int = 10) -> bytes:
    img = qrcode.make(data, box_size=box_size, border=2)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()
