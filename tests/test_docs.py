"""The documentation site builds in strict mode: every page is in the navigation and
every link and anchor between pages resolves; README.md and the pages point at
nothing that is missing."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_documentation_builds_strictly(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / "index.html").is_file()


# References a reader cannot follow: working notes and issue numbers that are not in
# the repository (say the rule instead), links to files that do not exist, and file
# paths in backticks that name nothing.
INTERNAL_NOTE = re.compile(
    r"CONTRACT(?:\.md)?\s*(?:§\s*)?\d+(?:\.\d+)*"  # CONTRACT 43, CONTRACT.md 3.20
    r"|\bissue[- ]#?\d+"  # issue-6, issue 6
    r"|\(#\d+",  # (#5 #6)
    re.IGNORECASE,
)
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
REPO_FILE = re.compile(r"[\w.-]+(?:/[\w.-]+)+\.(?:py|js|md|json|html|toml|txt)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def dangling_references(text: str, here: Path, root: Path = ROOT) -> list[str]:
    """What in `text` (a Markdown file in directory `here`) points at nothing."""
    found = [f"internal note {m.group(0)!r}" for m in INTERNAL_NOTE.finditer(text)]
    prose = FENCE.sub("", text)
    for target in MARKDOWN_LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (https:, mailto:) or an anchor on the same page
        if not (here / target.split("#", 1)[0]).exists():
            found.append(f"link to missing {target!r}")
    for span in CODE_SPAN.findall(prose):
        if REPO_FILE.fullmatch(span) and not (root / span).exists():
            found.append(f"missing file `{span}`")
    return found


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize(
    "path", markdown_files(), ids=lambda path: str(path.relative_to(ROOT))
)
def test_no_dangling_references(path):
    found = dangling_references(path.read_text(), path.parent)
    assert not found, f"{path.name}: " + "; ".join(found)


def test_the_reference_check_finds_each_kind(tmp_path):
    (tmp_path / "there.md").write_text("")
    text = (
        "As CONTRACT 43 says, see the issue-6 scenarios (#5 #6) and issue 12.\n"
        "[ok](there.md#top) [url](https://example.com) [gone](docs/gone.md)\n"
        "`aether_compat/nothing_here.py` `tests/test_docs.py` `bench/results/*.json`\n"
        "```python\n"
        "# [a](in/a/fence.md) `in/a/fence.py`\n"
        "```\n"
    )
    assert dangling_references(text, tmp_path) == [
        "internal note 'CONTRACT 43'",
        "internal note 'issue-6'",
        "internal note '(#5'",
        "internal note 'issue 12'",
        "link to missing 'docs/gone.md'",
        "missing file `aether_compat/nothing_here.py`",
    ]
