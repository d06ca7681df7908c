"""The one check of model and cell names: each becomes a folder, `<out>/<model>/<cell>/`.

A name is printable text (no control characters or newlines: it is echoed in messages and tables),
holds no path separator, is not `.`, `..` or hidden (`.x`: the folder's temp files start with a dot),
is not a file trtbuild writes into the model's folder beside its cells, and fits in MAX_NAME_BYTES
of UTF-8. File systems allow 255 bytes per path component (NAME_MAX); a name is a component on its
own today, and the margin leaves room for a suffix (a temp sibling, an archive) without breaking
configs that work now.
"""

from __future__ import annotations

MAX_NAME_BYTES = 128
# What trtbuild writes into `<out>/<model>/` beside the cells' folders: the reports
# (report/write.py: NAMES) and the folder's owner record (exec/owners.py: OWNER_FILE).
# tests/spec/test_names.py checks that this list covers both.
MODEL_FOLDER_FILES = ("report.json", "report.md", "report.html", "owner.json")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a model or a cell's folder, or None if it can."""
    if not name:
        return "a name cannot be empty"
    if not name.isprintable():
        return "a name cannot hold control characters, newlines or other non-printable characters"
    if "/" in name or "\\" in name:
        return "a name cannot hold a path separator ('/' or '\\')"
    if name in (".", ".."):
        return f"'{name}' names the folder itself or its parent, not a folder of its own"
    if name.startswith("."):
        return "a name cannot start with '.' (hidden files; trtbuild's temp files start with one)"
    if name.casefold() in MODEL_FOLDER_FILES:
        return f"'{name}' is a file trtbuild writes into the model's folder, beside the cells' folders"
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"a name is at most {MAX_NAME_BYTES} bytes of UTF-8; this one has {size}"
    return None
