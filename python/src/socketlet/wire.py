"""Event arguments as socketlet's API and hooks carry them: JSON, with each binary attachment
replaced by a placeholder ``{"_placeholder": true, "num": N}`` and sent separately, base64, as the
N-th string of a ``binary`` list."""

import base64
import binascii

_BINARY_TYPES = (bytes, bytearray, memoryview)


def pack(args):
    """``(args, binary)``: ``args`` (a list) with every ``bytes`` (``bytearray``, ``memoryview``)
    found in it, at any depth of lists, tuples and dicts, replaced by a placeholder, and the
    attachments as base64 strings in placeholder order. Other values are left as they are (they
    must be JSON-serialisable)."""
    binary = []

    def walk(value):
        if isinstance(value, _BINARY_TYPES):
            binary.append(base64.b64encode(bytes(value)).decode("ascii"))
            return {"_placeholder": True, "num": len(binary) - 1}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return [walk(a) for a in args], binary


def _is_placeholder(value):
    return isinstance(value, dict) and value.get("_placeholder") is True and "num" in value


def unpack(args, binary=()):
    """``args`` with every placeholder replaced by its attachment (``bytes``) from ``binary``, the
    base64 strings of a hook request or an API answer. Raises ``ValueError`` when a placeholder
    names no attachment or an attachment is not base64."""
    decoded = []
    for i, item in enumerate(binary or ()):
        try:
            decoded.append(base64.b64decode(item, validate=True))
        except (binascii.Error, TypeError, ValueError) as exc:
            raise ValueError(f"binary[{i}] is not base64: {exc}") from None

    def walk(value):
        if _is_placeholder(value):
            num = value["num"]
            if isinstance(num, bool) or not isinstance(num, int) or not 0 <= num < len(decoded):
                raise ValueError(
                    f"a placeholder names attachment {num!r}, and there are {len(decoded)}"
                )
            return decoded[num]
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return [walk(a) for a in (args or ())]


def rooms(to, what="to"):
    """A list of room names from ``None``, one name, or an iterable of names."""
    if to is None:
        return []
    if isinstance(to, str):
        return [to]
    if isinstance(to, (bytes, bytearray)):
        raise TypeError(f"{what}: room names are str, not bytes")
    out = list(to)
    for room in out:
        if not isinstance(room, str):
            raise TypeError(f"{what}: room names are str, not {type(room).__name__}")
    return out
