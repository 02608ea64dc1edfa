"""Dataset templates: one module per dataset family, registered here by name.

``TEMPLATES[name]`` is the template class; its ``yields`` says which record types it returns and its
dataclass fields are its options. :func:`get_template` builds one from a name and options and turns
a typo in either into an error that lists what exists.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from alignkit.data.errors import TemplateError
from alignkit.data.templates.align_anything import AlignAnythingTI2T
from alignkit.data.templates.aligner import Aligner, AlignerChat, StreamAligner, StreamAlignerChat
from alignkit.data.templates.base import OPTION_HINT, RowContext, Template
from alignkit.data.templates.beavertails import BeaverTails
from alignkit.data.templates.beavertails_v import BeaverTailsV
from alignkit.data.templates.columns import Columns
from alignkit.data.templates.deceptionbench import DeceptionBench
from alignkit.data.templates.hh_rlhf import HhRlhf
from alignkit.data.templates.intermt import InterMT
from alignkit.data.templates.pku_saferlhf import PkuSafeRlhf, PkuSafeRlhfQa
from alignkit.data.templates.trl import (
    Trl,
    TrlCompletion,
    TrlMessages,
    TrlPreference,
    TrlPrompt,
    TrlText,
    TrlUnpaired,
)
from alignkit.data.templates.ultrafeedback import UltraFeedbackBinarized

TEMPLATES: dict[str, type[Template]] = {
    cls.name: cls
    for cls in (
        PkuSafeRlhf,
        PkuSafeRlhfQa,
        BeaverTails,
        BeaverTailsV,
        HhRlhf,
        UltraFeedbackBinarized,
        AlignAnythingTI2T,
        InterMT,
        Aligner,
        AlignerChat,
        StreamAligner,
        StreamAlignerChat,
        Trl,
        TrlPreference,
        TrlUnpaired,
        TrlCompletion,
        TrlMessages,
        TrlText,
        TrlPrompt,
        Columns,
        DeceptionBench,
    )
}


def get_template(name: str | Template, **options: Any) -> Template:
    """The template called ``name`` built with ``options`` (an instance is returned as is).

    Every way this can fail is a :class:`TemplateError` that lists what exists, so a typo in a config
    or on the command line is reported like any other data error, not as a traceback.
    """
    if isinstance(name, Template):
        if options:
            raise TemplateError(f"template options {sorted(options)} given with an already built template")
        return name
    if name not in TEMPLATES:
        close = difflib.get_close_matches(str(name), TEMPLATES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TemplateError(
            f"unknown template {name!r}{hint}; known templates: {', '.join(sorted(TEMPLATES))}"
        )
    cls = TEMPLATES[name]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TemplateError(
            f"template {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(known) if known else 'none'}"
        )
    try:
        return cls(**options)
    except ValueError as exc:  # an option value the template refuses (e.g. an unknown dimension)
        raise TemplateError(f"template {name!r}: {exc} (set the option {OPTION_HINT})") from None


__all__ = ["OPTION_HINT", "TEMPLATES", "RowContext", "Template", "TemplateError", "get_template"]
