"""Pictures in chat requests: OpenAI ``image_url`` content parts, read for a vision-language model.

Only ``data:image/...;base64,...`` URLs are accepted. The server fetches nothing itself: an ``http(s)``
URL would make it a proxy into whatever network it runs in, and a file path would let a client read its
disk, so both are refused with a 400 that says what to send instead. A part becomes the ``{"type":
"image", "base64": ...}`` block the model's processor reads (``data/records.ContentPart`` writes the same).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from alignkit.serve.errors import APIError

DATA_URL = re.compile(r"data:image/[\w.+-]+;base64,(?P<data>[A-Za-z0-9+/=\s]*)", re.DOTALL)


def image_block(part: dict[str, Any], where: str, accepts_images: bool) -> dict[str, Any]:
    """The processor's image block for one ``image_url`` part, or a 400 naming ``where``."""
    if not accepts_images:
        raise APIError(
            400,
            f"{where}: only text parts are supported by this model (serve a vision-language model to send "
            "pictures)",
            param=where,
        )
    field = part.get("image_url")
    url = field.get("url") if isinstance(field, dict) else field
    match = DATA_URL.fullmatch(url) if isinstance(url, str) else None
    if match is None:
        shown = url[:40] + "..." if isinstance(url, str) and len(url) > 40 else url
        raise APIError(
            400,
            f"{where}.image_url.url: {shown!r} is not a data:image/<format>;base64,<data> URL; this server "
            "fetches no URLs and reads no files, so send the picture itself, base64-encoded",
            param=f"{where}.image_url",
        )
    data = re.sub(r"\s", "", match["data"])
    try:
        from PIL import Image

        Image.open(io.BytesIO(base64.b64decode(data, validate=True))).verify()
    except (binascii.Error, ValueError, OSError) as error:
        raise APIError(
            400, f"{where}.image_url.url: the base64 data is not a readable image ({error})", param=where
        ) from error
    return {"type": "image", "base64": data}
