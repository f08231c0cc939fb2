"""Caption normalisation: one canonical word per garment synonym (the pipeline study found it
essential: "tee", "t shirt" and "t-shirt" must not be three things to learn). Pure TensorFlow
string ops, so the Transform fragment (training captions) and the exported text signature
(queries and prompts) normalise identically, inside their graphs.
"""

from __future__ import annotations

import tensorflow as tf

# canonical word → the synonyms written for it (whole words or phrases, lower case). The
# canonical words are the project's garment categories and colours as captions spell them.
SYNONYMS = {
    "t-shirt": ("tee", "tees", "tshirt", "tshirts", "t shirt", "t shirts", "t-shirts"),
    "sweater": ("jumper", "jumpers", "pullover", "pullovers", "sweaters", "knit", "knitwear"),
    "hoodie": ("hoody", "hooded sweatshirt", "hoodies"),
    "pants": ("trousers", "slacks", "chinos", "trouser"),
    "jeans": ("denims", "denim pants", "denim jeans"),
    "dress": ("gown", "frock", "dresses", "gowns"),
    "skirt": ("skirts", "miniskirt"),
    "shorts": ("short pants",),
    "coat": ("overcoat", "trench coat", "trenchcoat", "coats", "parka"),
    "jacket": ("jackets", "bomber"),
    "sneakers": ("trainers", "sneaker", "running shoes", "kicks"),
    "heels": ("high heels", "pumps", "stilettos", "heel"),
    "boots": ("boot", "booties"),
    "sandals": ("sandal", "flip flops", "flip-flops"),
    "bag": ("handbag", "purse", "tote", "bags", "handbags"),
    "shirt": ("button-down", "button down shirt", "shirts"),
    "blouse": ("blouses",),
    "gray": ("grey",),
    "stripes": ("striped", "stripy", "pinstripe", "pinstriped"),
    "checks": ("checked", "plaid", "tartan", "gingham"),
    "dots": ("dotted", "polka dots", "polka dot", "polka-dot"),
}


def _pattern(synonyms) -> str:
    # Longest first, so "t shirts" wins over "t shirt"; whole words only.
    words = sorted(synonyms, key=len, reverse=True)
    return r"\b(" + "|".join(word.replace(" ", r"\s+").replace("-", r"\-") for word in words) \
        + r")\b"


_REPLACEMENTS = tuple((_pattern(synonyms), canonical) for canonical, synonyms in SYNONYMS.items())


def normalize(captions: tf.Tensor) -> tf.Tensor:
    """Canonical form of a string tensor of captions: lower case, punctuation but hyphens
    dropped, each synonym replaced by its canonical word, single spaces."""
    text = tf.strings.lower(captions, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"[^\w\s\-]", " ")
    text = tf.strings.regex_replace(text, r"\s+", " ")
    for pattern, canonical in _REPLACEMENTS:
        text = tf.strings.regex_replace(text, pattern, canonical)
    return tf.strings.strip(text)


def prompts(template: str, labels) -> list[str]:
    """The zero-shot prompt of each label (``{label}`` in ``template``); label names use spaces
    (``t_shirt`` → ``t shirt``, normalised to ``t-shirt``), attribute values lose their family
    (``color:red`` → ``red``)."""
    return [template.format(label=label.split(":", 1)[-1].replace("_", " ")) for label in labels]
