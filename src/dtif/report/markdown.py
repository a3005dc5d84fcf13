"""Write a benchmark's section into a Markdown results page, and name the machine it ran on."""

from __future__ import annotations

import platform
import re
from pathlib import Path

from dtif.io import atomic_write_text


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the `## ` section that starts with `heading` in `path`, or append it.

    The section runs to the next `## ` heading or the end of the file. A missing file is
    created with a `# Results` title. The file is written atomically.
    """
    text = path.read_text() if path.exists() else "# Results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = f"{heading}\n\n{body.strip()}\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip() + "\n\n" + section
    atomic_write_text(path, text)


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
