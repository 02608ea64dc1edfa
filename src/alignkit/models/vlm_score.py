"""Score heads on multimodal (image- or audio-text) models: ``<Family>ForSequenceClassification`` where
transformers has none.

Reward models, cost models and moderation classifiers are ``AutoModelForSequenceClassification`` models
(``score_model.py``, ``moderation_model.py``): a backbone plus a bias-free ``score`` head read at each row's
last non-pad token. transformers implements that class for one VLM only (Gemma 3), and its
``Gemma3ForSequenceClassification`` is nothing but transformers' ``GenericForSequenceClassification`` on the
VLM's base model (vision tower + projector + language model, no LM head) with ``pixel_values`` passed
through. ``vlm_classifier_class`` builds the same class for any VLM or audio-language model whose config
``AutoModel`` knows (LLaVA, Qwen2-VL, Qwen2-Audio ...; an audio model's ``input_features`` pass through
as pixels do), and ``register_vlm_classifier`` registers it with ``AutoModelForSequenceClassification`` for
that config type. Why this design:

- **One code path.** Every caller keeps calling ``AutoModelForSequenceClassification.from_pretrained``;
  ``model(input_ids=..., attention_mask=..., pixel_values=...).logits`` is ``(B, num_labels)`` pooled at
  the same token as for text; ``.score`` and ``.base_model`` (which ``models/value.py``'s critic reads) are
  where they are on a text score model. Only the batch gains the media tensors (``MEDIA_KEYS``).
- **It loads a VLM checkpoint as the text classes load a causal LM**: the base model's weights are kept
  (transformers' own key conversions for the family apply), the LM head is dropped, ``score`` is new.
- **The run's ``final/`` is a plain Hugging Face folder** (config with ``architectures:
  ["LlavaForSequenceClassification"]``, safetensors, and the processor beside it), which reloads through
  the same call once this module has registered the class (``load_score_model`` and
  ``load_moderation_model`` do), or directly with ``vlm_classifier_class(config_type).from_pretrained``.

A value-head wrapper (as ``value.py``) was the alternative; it would have needed its own save format, its
own loader and a second pooling path for every consumer of a score model.
"""

from __future__ import annotations

from typing import Any

_CLASSES: dict[type, type] = {}
"""Config type -> the classifier class built for it (one class per family, so registering is idempotent)."""


def vlm_classifier_class(config_class: type) -> type:
    """The ``*ForSequenceClassification`` class for a VLM config type (transformers' own when it has one)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    mapping = AutoModelForSequenceClassification._model_mapping
    if config_class in mapping:  # Gemma 3, or a family registered earlier in this process
        return mapping[config_class]
    if config_class in _CLASSES:
        return _CLASSES[config_class]
    if config_class not in AutoModel._model_mapping:
        raise ValueError(
            f"no score head can be put on a {config_class.__name__} model: transformers has no base model "
            "(AutoModel) for it to read hidden states from"
        )
    cls = _build_class(config_class, _generator_class(config_class))
    _CLASSES[config_class] = cls
    return cls


def _generator_class(config_class: type) -> type | None:
    """The family's generating class (``LlavaForConditionalGeneration``, ``Qwen2AudioForConditionalGeneration``)
    whose ``*PreTrainedModel`` the classifier inherits. ``AutoModelForMultimodalLM`` maps image-, audio- and
    video-text families alike (for every image family the class ``AutoModelForImageTextToText`` gives, which
    has no audio models); the latter is the fallback for a transformers without the former."""
    import transformers

    for auto in ("AutoModelForMultimodalLM", "AutoModelForImageTextToText"):
        mapping = getattr(transformers, auto, None)
        found = None if mapping is None else mapping._model_mapping.get(config_class, None)
        if found is not None:
            return found
    return None


def _build_class(config_class: type, generator: type | None) -> type:
    """``GenericForSequenceClassification`` on the family's ``*PreTrainedModel`` (its weight init, layouts and
    key conversions), named after the family (``LlavaForConditionalGeneration`` -> ``LlavaForSequenceClassification``)."""
    from transformers import PreTrainedModel
    from transformers.modeling_layers import GenericForSequenceClassification

    family = config_class.__name__.removesuffix("Config")
    base: type = PreTrainedModel
    if generator is not None:
        family = generator.__name__.removesuffix("ForConditionalGeneration")
        base = next(
            (
                b
                for b in generator.__mro__[1:]
                if isinstance(b, type) and issubclass(b, PreTrainedModel) and b is not PreTrainedModel
            ),
            PreTrainedModel,
        )
    attrs = {"__module__": __name__, "config_class": config_class, "__doc__": _DOC.format(family=family)}
    return type(f"{family}ForSequenceClassification", (GenericForSequenceClassification, base), attrs)


_DOC = (
    "{family}'s base model (vision or audio tower, projector, language model) with a bias-free linear "
    "``score`` head read at each row's last non-pad token; media tensors (``pixel_values``, "
    "``input_features`` ...) pass through to the base "
    "model. Built by ``alignkit.models.vlm_score``."
)


def register_vlm_classifier(path: str, *, trust_remote_code: bool = False) -> bool:
    """Make ``AutoModelForSequenceClassification`` load the checkpoint at ``path`` when it is a VLM (a
    causal VLM for a fresh head, or a saved VLM score model). Returns whether it is one; a text checkpoint
    is left to transformers unchanged."""
    from alignkit.models.loading import is_multimodal, resolve_path

    local = resolve_path(path)
    if not is_multimodal(local, trust_remote_code=trust_remote_code):
        return False
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config_class = type(AutoConfig.from_pretrained(local, trust_remote_code=trust_remote_code))
    cls = vlm_classifier_class(config_class)
    if config_class not in AutoModelForSequenceClassification._model_mapping:
        AutoModelForSequenceClassification.register(config_class, cls, exist_ok=True)
    return True


def set_pad_token_id(config: Any, pad_token_id: int) -> None:
    """Set the padding id the pooling reads: on the config, and on its text config, where transformers'
    ``GenericForSequenceClassification`` looks for it (the same object for a text model)."""
    config.pad_token_id = pad_token_id
    text = config.get_text_config()
    if text is not config:
        text.pad_token_id = pad_token_id
