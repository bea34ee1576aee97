"""docs/SERVICE.md's curl examples show what the shipped model answers today (bench/service_examples.py writes them):
hand-copied answers went stale with every model."""
from __future__ import annotations

import json
import re

from bench import service_examples as S


def test_the_committed_examples_are_what_the_shipped_model_answers(model_dir):
    text = S.DOC.read_text()
    committed = text[text.index(S.START): text.index(S.END) + len(S.END)]
    assert committed == S.examples(), "docs/SERVICE.md is stale: run .venv/bin/python bench/service_examples.py"


def test_every_example_answer_is_valid_json_once_unwrapped():
    """The shortened answers are JSON with `...` marking what was left out (so a reader can paste the shape)."""
    block = S.examples()
    answers, current = [], None
    for line in block.splitlines():
        if line.startswith("# {") or line.startswith("# ["):
            current = line[2:]
        elif line.startswith("#  ") and current is not None:
            current += line[3:]
        else:
            if current is not None:
                answers.append(current)
            current = None
    assert len(answers) >= 6
    for a in answers:
        cleaned = re.sub(r",\.\.\.(?=[\]}])", "", a)
        json.loads(cleaned)
