"""Make untrusted text safe to print: a model must not be able to drive the terminal.

Model output, the clinician's note and every string read from a model file pass
through `neutralise` where they enter the program. It lives here, at the bottom
layer, so that the model-file readers in `models/` use the same door as the engine.

Every C0 control character except newline and tab, DEL and every C1 control is
replaced by a visible symbol, so an escape sequence shows as text (for example
"␛[2J") instead of clearing the clinician's screen. One `str.translate`, cheap
enough for every token.
"""

from __future__ import annotations

_TABLE = {code: 0x2400 + code for code in range(0x20) if chr(code) not in "\n\t"}
_TABLE[0x7F] = 0x2421  # ␡
_TABLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})


def neutralise(text: str) -> str:
    return text.translate(_TABLE)
