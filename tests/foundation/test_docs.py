"""The README is a front door and the docs hold together: the README stays short and links every
page under docs/, every relative link in the README, CONTRIBUTING.md and docs/ leads to a file
(and heading) that exists, and the README's tour runs as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.devserver.stack import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 200

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def prose(path: Path) -> str:
    """The page without its fenced code blocks (a `[x](y)` in code is not a link)."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces
    as dashes, a repeated heading suffixed -1, -2, ..."""
    found: set[str] = set()
    for heading in HEADING.findall(prose(path)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        anchor, repeat = slug, 0
        while anchor in found:
            repeat += 1
            anchor = f"{slug}-{repeat}"
        found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(prose(path))
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def broken(path: Path, target: str) -> str | None:
    """Why `target`, linked from `path`, leads nowhere (None: it resolves)."""
    file_part, _, anchor = target.partition("#")
    linked = (path.parent / file_part).resolve() if file_part else path
    if not linked.exists():
        return f"{linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked} is missing"
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        return f"{linked.name} has no heading for #{anchor}"
    return None


def test_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    lines = text.count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference into docs/"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("dev", "test"):  # the two commands
        assert f"\nmake {target} " in text, f"README.md lost `make {target}`"
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no '{target}' target"


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link docs/{', docs/'.join(unlinked)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    problems = [f"({t}): {why}" for t in relative_links(page) if (why := broken(page, t))]
    assert not problems, f"{page.relative_to(ROOT)}: " + "; ".join(problems)


def tour() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- section: tour -->(.*?)<!-- /section: tour -->", text, re.S)
    assert match, "README.md has no 'tour' section"
    return match.group(1)


def tour_commands() -> list[list[str]]:
    """Each shell command of the tour's code blocks, split as the shell would."""
    blocks = re.findall(r"^```sh\n(.*?)^```", tour(), re.S | re.M)
    commands = []
    for block in blocks:
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip():
                commands.append(shlex.split(command))
    return commands


def test_tour_uses_the_events_gateway_dev_offers() -> None:
    """`gateway dev` prints three events to try; tests/daemon/test_dev.py sends the first two
    through the running stack and follows them to the completion event. The tour sends those
    two and explains the third."""
    commands = tour_commands()
    sends = [(c[3], json.loads(c[4])) for c in commands if c[1:3] == ["dev", "send"]]
    assert sends == EXAMPLES[:2]
    [explain] = [c for c in commands if c[1:2] == ["explain"]]
    [echo] = [c for c in commands if c[0] == "echo"]
    assert (explain[explain.index("--source") + 1], json.loads(echo[1])) == EXAMPLES[2]


def test_tour_explain_and_check_run_as_written(tmp_path: Path) -> None:
    """The commands of the tour that need no running stack, run as a reader would: from the
    repository, with the tour's own event file."""
    offline = [c for c in tour_commands() if c[0] == "echo" or c[1:2] in (["explain"], ["check"])]
    assert [c[0] if c[0] == "echo" else c[1] for c in offline] == ["echo", "explain", "check"]
    gateway = str(Path(sys.executable).parent / "gateway")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    outputs = []
    for command in offline:
        if command[0] == "echo":
            (tmp_path / command[3]).write_text(command[1] + "\n", encoding="utf-8")
            continue
        argv = [gateway, *(str(tmp_path / a) if a.endswith(".json") else a for a in command[1:])]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    explained, checked = outputs
    assert "MATCH  cancel-order" in explained
    assert "DELETE /api/workflow/" in explained
    assert "rules: ok" in checked
