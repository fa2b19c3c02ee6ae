"""Rows -> (prompt, completion): forms, column mapping, templates and error messages."""

from __future__ import annotations


import pytest

from ftrecipe_text.formatting import render_example, render_examples, template_fields
from ftrecipe_text.records import FormatError, get_column

SQL_TEMPLATE = "-- schema:\n{schema}\n-- question: {question}\n"


def test_completion_form_plain_columns() -> None:
    row = {"prompt": "2+2=", "completion": "4"}
    assert render_example(row, form="completion") == ("2+2=", "4")


def test_completion_form_with_mapping_and_template() -> None:
    row = {"question": "How many?", "query": "SELECT 1;", "schema": "CREATE TABLE t (a INT);"}
    prompt, completion = render_example(
        row, form="completion", columns={"prompt": "question", "completion": "query"}, template=SQL_TEMPLATE
    )
    assert prompt == "-- schema:\nCREATE TABLE t (a INT);\n-- question: How many?\n"
    assert completion == "SELECT 1;"


def test_template_can_use_canonical_names() -> None:
    row = {"q": "hi", "a": "there"}
    out = render_example(row, form="completion", columns={"prompt": "q", "completion": "a"}, template="Q: {prompt}\nA:")
    assert out == ("Q: hi\nA:", "there")


def test_non_string_values_are_stringified() -> None:
    assert render_example({"prompt": "n=", "completion": 3}, form="completion") == ("n=", "3")


def test_missing_mapped_column_names_column_and_available() -> None:
    row = {"question": "q", "answer": "a"}
    with pytest.raises(FormatError) as info:
        render_example(row, form="completion", columns={"prompt": "question", "completion": "query"}, row_index=7)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.row_index == 7
    msg = str(err)
    assert msg.startswith("row 7:")
    assert "'completion'" in msg and "'query'" in msg
    assert "'question'" in msg and "'answer'" in msg


def test_missing_template_placeholder_is_reported() -> None:
    row = {"question": "q", "query": "SELECT 1"}
    with pytest.raises(FormatError, match=r"\{schema\}.*'question', 'query'"):
        render_example(row, form="completion", columns={"completion": "query"}, template=SQL_TEMPLATE, row_index=0)


def test_null_value_is_an_error_not_the_string_none() -> None:
    with pytest.raises(FormatError, match="is null"):
        render_example({"prompt": None, "completion": "x"}, form="completion")


def test_positional_template_field_rejected() -> None:
    with pytest.raises(ValueError, match="positional"):
        template_fields("x {} y")
    assert template_fields("{a} {b.c} {a} {d[0]}") == ["a", "b", "d"]


def test_instruction_form_default_template_with_and_without_input() -> None:
    with_input = render_example({"instruction": "Translate", "input": "chat", "output": "cat"}, form="instruction")
    assert with_input == ("### Instruction:\nTranslate\n\n### Input:\nchat\n\n### Response:\n", "cat")
    no_input = render_example({"instruction": "Say hi", "output": "hi"}, form="instruction")
    assert no_input == ("### Instruction:\nSay hi\n\n### Response:\n", "hi")


def test_instruction_form_custom_template_missing_input_is_empty() -> None:
    row = {"task": "Add", "answer": "5"}
    out = render_example(
        row,
        form="instruction",
        columns={"instruction": "task", "output": "answer"},
        template="{instruction}|{input}|",
    )
    assert out == ("Add||", "5")


def test_chat_form_uses_chat_template_and_last_assistant(tokenizer) -> None:
    row = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "count"},
            {"role": "assistant", "content": "1 2 3"},
        ]
    }
    prompt, completion = render_example(row, form="chat", tokenizer=tokenizer)
    assert completion == "1 2 3"
    assert prompt == (
        "<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\nhello</s>\n<|user|>\ncount\n<|assistant|>\n"
    )


def test_chat_form_errors(tokenizer) -> None:
    with pytest.raises(FormatError, match="no assistant"):
        render_example({"messages": [{"role": "user", "content": "x"}]}, form="chat", tokenizer=tokenizer)
    trailing = [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(FormatError, match="after the last assistant"):
        render_example({"messages": trailing}, form="chat", tokenizer=tokenizer)
    with pytest.raises(FormatError, match="'messages'"):
        render_example({"conversation": []}, form="chat", tokenizer=tokenizer)
    with pytest.raises(ValueError, match="template"):
        render_example({"messages": []}, form="chat", template="{x}", tokenizer=tokenizer)


def test_non_mapping_row() -> None:
    with pytest.raises(FormatError, match="expected a mapping"):
        render_example(["a", "b"], form="completion", row_index=1)  # type: ignore[arg-type]


def test_unknown_form() -> None:
    with pytest.raises(ValueError, match="unknown form"):
        render_example({}, form="dialogue")


def test_render_examples_reports_the_failing_row_index() -> None:
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}, {"prompt": "e"}]
    with pytest.raises(FormatError) as info:
        render_examples(rows, form="completion")
    assert info.value.row_index == 2


def test_get_column_optional_default() -> None:
    assert get_column({"a": 1}, "b", None, required=False, default="x") == "x"
    assert get_column({"z": 1}, "b", {"b": "z"}) == 1


def test_format_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(FormatError(3, "boom")))
    assert (err.row_index, err.message, str(err)) == (3, "boom", "row 3: boom")
