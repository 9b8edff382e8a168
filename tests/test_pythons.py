"""The Python versions setup.cfg claims are exactly those scripts/test-pythons runs the
suite on (CI runs it), so a claim is never made for a version nobody tested."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_claimed_versions_are_the_tested_ones() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    classifiers = config["metadata"]["classifiers"]
    claimed = re.findall(r"Programming Language :: Python :: (3\.\d+)", classifiers)
    script = (ROOT / "scripts" / "test-pythons").read_text()
    default = re.search(r"versions=\(([\d. ]+)\)", script)
    assert default is not None
    assert claimed == default.group(1).split()
    assert config["options"]["python_requires"] == f">={claimed[0]}"
