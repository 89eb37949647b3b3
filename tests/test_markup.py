"""Values from an API, a test or a user land as text in Markdown, HTML and on
a terminal: none of them can open markup, close a fence or move the cursor.

The Markdown is rendered by a real CommonMark implementation (markdown-it-py,
with GitHub's tables) and the rendered HTML is searched for injected elements.
"""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from testmem.agents.defects import DefectReport
from testmem.memory.markup import html, json_text, md_cell, md_code, md_fence, md_text, terminal

HOSTILE = [
    "test_x[`<img src=x onerror=alert(1)>`]",
    "``` \n# injected heading\n<script>alert(1)</script>",
    "~~~\n## tilde\n~~~",
    "a | b <b>bold</b> & [link](http://evil) ![i](x) **strong**",
    "`` double ``` triple ````",
    "line\r\nbreak\u2028sep",
]


def rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def injected(page: str) -> list[str]:
    tags = ("<img", "<script", "<b>", "<a ", "<h1", "<h2", "<strong", "<em")
    return [tag for tag in tags if tag in page]


@pytest.mark.parametrize("value", HOSTILE)
def test_inline_code_keeps_any_value_one_code_span(value: str) -> None:
    page = rendered(f"before {md_code(value)} after")
    assert injected(page) == [] and page.count("<code>") == 1 and "after</p>" in page


@pytest.mark.parametrize("value", HOSTILE)
def test_plain_markdown_text_renders_as_the_text(value: str) -> None:
    assert injected(rendered(md_text(value))) == []


@pytest.mark.parametrize("value", HOSTILE)
def test_a_fence_is_not_closed_by_what_it_holds(value: str) -> None:
    page = rendered(md_fence(value) + "\n\n## after")
    assert page.count("<pre>") == 1 and page.count("<h2>") == 1 and "<h1" not in page


@pytest.mark.parametrize("value", HOSTILE)
def test_a_table_cell_stays_one_cell(value: str) -> None:
    table = f"| a | b |\n|---|---|\n| {md_cell(md_code(value))} | {md_cell(md_text(value))} |"
    page = rendered(table)
    assert page.count("<td>") == 2 and injected(page) == []


def test_html_escapes_markup_and_quotes() -> None:
    assert html('<a href="x">&</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"


@pytest.mark.parametrize(
    "sequence",
    ["\x1b[31m", "\x1b[2J\x1b[H", "\x1b]8;;http://evil\x1b\\", "\x1b]8;;http://evil\x07",
     "\x1b]0;title\x07", "\x9b31m", "\x9d8;;http://evil\x9c", "\x1bc", "\r", "\x08", "\x7f",
     "\u202e", "\x1bP+q\x1b\\"],
)  # fmt: skip
def test_terminal_text_has_no_escape_sequence_or_control_character(sequence: str) -> None:
    out = terminal(f"ok{sequence}text\tand\nmore")
    assert out == "oktext\tand\nmore"


def test_a_defect_report_keeps_hostile_values_as_text() -> None:
    hostile = HOSTILE[1] + " " + HOSTILE[0]
    report = DefectReport(
        defect_id="DEF-1", incident_id="INC-1", title=hostile, severity="high",
        summary=hostile, reproduction="curl 'http://h/```'\n# h", expected=hostile,
        actual=hostile, response="HTTP 500\n```\n# injected\n<img src=x onerror=1>",
        first_bad_build=hostile, last_good_build=None, occurrences=1, first_seen="",
        last_seen="", tests=[HOSTILE[0]], routes=["/a`|`<b>"],
    )  # fmt: skip
    page = rendered(report.to_markdown())
    assert [t for t in injected(page) if t not in ("<h1", "<h2", "<strong")] == []
    assert page.count("<strong>") == 4  # the template's own: Defect, incident, severity...
    assert page.count("<h1>") == 1 and page.count("<h2>") == 4 and page.count("<pre>") == 2


def test_the_markdown_report_keeps_hostile_ids_routes_and_keys_as_text(tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    from testmem.memory.events import Blob, HttpExchanged, RunStarted
    from testmem.memory.events import TestFinished as Finished
    from testmem.memory.query import History
    from testmem.memory.report import render, weekly_report
    from testmem.memory.store import Store

    store, now = Store(tmp_path / "s"), datetime.now(UTC) - timedelta(hours=1)
    nodeid, route = HOSTILE[0], "/x/`<img src=x onerror=1>`|{id}"
    events = []
    for i, (outcome, key) in enumerate((("failed", "a"), ("passed", "<b>k|`</b>"))):
        run = f"r{i}"
        events += [
            RunStarted(run_id=run, occurred_at=now + timedelta(minutes=i), build="<b>b</b>"),
            Finished(run_id=run, occurred_at=now + timedelta(minutes=i), nodeid=nodeid,
                     outcome=outcome, attempt=1),
            HttpExchanged(run_id=run, occurred_at=now + timedelta(minutes=i), exchange_id=run,
                          route=route, status=200, response_body=Blob.of(f'{{"{key}": 1}}')),
        ]  # fmt: skip
    store.events.append(events)
    page = rendered(render(weekly_report(History(store), weeks=1), "md"))
    own = ("<h2", "<strong")  # the report's own headings and figures
    assert [t for t in injected(page) if t not in own] == [] and "onerror" in page


def test_json_text_escapes_what_a_terminal_acts_on_and_reads_back_whole() -> None:
    value = {"k\x9b": ["\x9b31m", "\u2028", "\u202e", "é", "\x1b[2J"]}
    text = json_text(value)
    assert json.loads(text) == value
    assert "é" in text and not any("\x7f" <= c <= "\x9f" or c in "\u2028\u202e" for c in text)
