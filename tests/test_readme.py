"""The README and the pages under docs/ run as written: every ```python snippet runs as a script
in a fresh interpreter from the repository root, and where a ```text block follows it directly,
the script prints exactly that.

- A snippet whose first line is ``# continues the example above`` runs after the snippet before
  it in the same page, as one script; the text block after it shows what it prints itself.
- A snippet right after ``<!-- not run: REASON -->`` is skipped (it needs a checkout or a
  machine the tests do not have); say why.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONTINUES = "# continues the example above"
_MARK = "--- snippet starts here ---"

_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.S | re.M)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$", re.S)


class Snippet(NamedTuple):
    page: str
    line: int
    code: str
    output: Optional[str]
    skip: Optional[str]


def snippets(page: Path) -> List[Snippet]:
    """The page's python snippets, each with the text block that follows it (or None) and the
    code of the snippets it continues prepended."""
    text = page.read_text()
    blocks = list(_BLOCK.finditer(text))
    found: List[Snippet] = []
    for i, block in enumerate(blocks):
        if block.group(1) != "python":
            continue
        code = block.group(2)
        output = None
        if i + 1 < len(blocks) and blocks[i + 1].group(1) == "text" and \
                not text[block.end():blocks[i + 1].start()].strip():
            output = blocks[i + 1].group(2)
        skip = _NOT_RUN.search(text[:block.start()].rstrip() + "\n")
        if code.startswith(CONTINUES) and found:
            # the page shows what this snippet prints, after what the ones before it printed
            code = found[-1].code + f"\nprint({_MARK!r})\n" + code
        found.append(Snippet(page.name, text.count("\n", 0, block.start()) + 1, code, output,
                             skip.group(1) if skip and text[:block.start()].rstrip()
                             .endswith("-->") else None))
    return found


ALL = [s for page in PAGES for s in snippets(page)]


@pytest.mark.parametrize("snippet", ALL, ids=[f"{s.page}:{s.line}" for s in ALL])
def test_snippet_runs_and_prints_what_the_page_shows(snippet):
    if snippet.skip:
        pytest.skip(snippet.skip)
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", snippet.code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    where = f"{snippet.page}, snippet at line {snippet.line}"
    assert done.returncode == 0, f"{where} failed:\n{done.stderr[-3000:]}"
    if snippet.output is not None:
        printed = done.stdout.rpartition(_MARK + "\n")[2]
        assert printed.rstrip("\n") == snippet.output.rstrip("\n"), \
            f"{where} prints something else than the page shows:\n{printed}"


def test_every_page_has_runnable_snippets_found():
    assert len([s for s in ALL if s.page == "README.md"]) >= 3


def _anchor(heading: str) -> str:
    # GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_point_into_the_repository(page):
    """Every relative link names a file in the repository (a reader of a clone has nothing
    else) and, with ``#anchor``, a heading of that page."""
    for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if link.startswith(("http://", "https://")):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.exists() and ROOT in target.parents, f"{page.name}: {link} is not in the repository"
        if anchor and target.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", target.read_text(), re.M)
            assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no heading for {link}"
