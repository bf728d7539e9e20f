"""Moved to `tui.drafts` (drafts hold form field ids, which belong to the terminal front end).

Kept only until the app imports `tui.drafts` directly.
"""

from tui.drafts import Draft, clear_draft, draft_path, load_draft, save_draft

__all__ = ["Draft", "clear_draft", "draft_path", "load_draft", "save_draft"]
