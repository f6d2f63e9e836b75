"""The images of one message add up to a size relays take: six 9 MB photos, each under the
10 MB a file may be, made a 73 MB message for every reader, and validate said nothing. Real
CLI runs on the sample project with real PNG files; nothing is built or sent."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose.message_size import wire_size
from test_image_content import errors, png, write

ISSUE_YAML = f"{SAMPLE_ISSUE}/issue.yaml"


SIZE_HINT = ("relays refuse larger messages for every reader, Exchange at 10 MB and Gmail at "
             "25 MB: export photos as JPEG about 1,100 pixels wide, or show fewer")


def test_images_that_make_the_message_too_big_are_refused(project: Path,
                                                           run_cli: RunCli) -> None:
    names = [f"b{n}.png" for n in range(1, 5)]  # 4 x 2.5 MB: each fine, 13.7 MB as sent
    write(project, " ".join(f"![{name}]({name})" for name in names) + "\n",
          {name: png(filler=2_500_000 - 100 * n) for n, name in enumerate(names)})
    expected = (f"{ISSUE_YAML}:13: issue 2021-10-partners-meeting (en): the images make each "
                "message 13.7 MB as sent (base64); at most 10 MB: b1.png 3.4 MB, b2.png "
                f"3.4 MB, b3.png 3.4 MB and 1 more ({SIZE_HINT})")
    for command in (("validate", SAMPLE_ISSUE), ("preview", SAMPLE_ISSUE),
                    ("send", SAMPLE_ISSUE, "--yes")):
        result = run_cli(*command)
        assert result.code == 2, (command, result.err)
        assert errors(result.err) == [expected], command
    assert not (project / "preview").exists() and not (project / "outbox").exists()


def test_a_heavy_message_is_warned_about(project: Path, run_cli: RunCli) -> None:
    write(project, "![A big photo](big.png)\n", {"big.png": png(filler=900_000)})
    result = run_cli("validate", SAMPLE_ISSUE)
    assert result.code == 0, result.err
    assert (f"{ISSUE_YAML}:13: warning: issue 2021-10-partners-meeting (en): the images make "
            "each message 1.2 MB as sent (base64): big.png 1.2 MB (above 1 MB spam filters "
            "grow wary and phones download it all: export photos as JPEG about 1,100 pixels "
            "wide)") in result.err.splitlines()


@pytest.mark.parametrize("size", [0, 1, 2, 3, 56, 57, 58, 1164, 100_000])
def test_wire_size_is_the_base64_body_with_crlf(size: int) -> None:
    encoded = base64.encodebytes(os.urandom(size)).replace(b"\n", b"\r\n")
    assert wire_size(size) == len(encoded)
