"""Partial screen updates that start at the first changed cell.

Textual (8.2.8) writes a partial update chop by chop, a chop being the part of a
row that one widget covers. It ends a chop's write at the changed span's end,
but starts it at the chop's first cell whatever changed (`ChopsUpdate.render_segments`:
"TODO: crop to x extents"). A letter typed at column 50 of the note therefore
rewrites the row from the editor's left border: about 50 cells and their colour
codes per key over SSH instead of two.

`CellPreciseUpdate` writes the same cells from the first changed one (backed up to
the start of a wide character it falls inside), and skips chops that start where
the span ends. The cells before a span are already on the terminal, unchanged.
"""

from __future__ import annotations

from rich.cells import get_character_cell_size
from rich.console import Console
from rich.control import Control
from textual._compositor import ChopsUpdate
from textual.strip import Strip


def character_start(strip: Strip, offset: int) -> int:
    """The cell where the character covering cell `offset` of `strip` begins."""
    position = 0
    for segment in strip:
        for character in segment.text:
            width = get_character_cell_size(character)
            if position + width > offset:
                return position
            position += width
    return position


class CellPreciseUpdate(ChopsUpdate):
    """A `ChopsUpdate` that writes each changed span from its first cell, not from its chop's."""

    @classmethod
    def from_update(cls, update: ChopsUpdate) -> CellPreciseUpdate:
        return cls(update.chops, update.spans, update.chop_ends)

    def render_segments(self, console: Console) -> str:
        sequences: list[str] = []
        last_y = self.spans[-1][0]
        for y, x1, x2 in self.spans:
            for end, (x, strip) in zip(self.chop_ends[y], self.chops[y].items(), strict=False):
                if strip is None or x >= x2 or end <= x1:
                    continue
                start = character_start(strip, x1 - x) if x1 > x else 0
                sequences.append(Control.move_to(x + start, y).segment.text)
                sequences.append(strip.crop(start, min(end, x2) - x).render(console))
            if y != last_y:
                sequences.append("\n")
        return "".join(sequences)
