"""A path written in mirage.yaml (``transport.url: maildir:PATH``, ``transport.ca_file``,
``tracking.database``, ``templates``, ``dkim.key_file``, ``bounces.mailbox``,
``bounces.ca_file``): ``~`` is the user's home folder, as in a shell, and a relative path is
relative to the folder that holds mirage.yaml, whatever the current folder. One reader for
every key: ``maildir:~/Maildir`` once made a folder named ``~`` inside the project, where
.gitignore does not cover it, while ``ca_file: ~/ca.pem`` was expanded.
"""

from __future__ import annotations

from pathlib import Path


def written_path(text: str) -> Path:
    """``text`` as a path, ``~`` and ``~user`` expanded (left as written where the home folder
    is unknown)."""
    return Path(text).expanduser()


def project_path(root: Path, text: str) -> Path:
    """``text`` as an absolute path: ``~`` expanded, relative to ``root`` (the project)."""
    return (root / written_path(text)).resolve()


def is_folder(path: Path) -> bool:
    """``Path.is_dir`` that says no, instead of raising, where this user may not look (a
    ``.mirage/`` readable by its owner only): what is there is then for the command that
    opens it to word."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
