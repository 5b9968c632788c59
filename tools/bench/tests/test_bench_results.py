"""results.json and the printed table."""

from __future__ import annotations

import json
from pathlib import Path

from hibiki_bench.results import Result, format_table, measured, write_json


def test_ratio_is_value_over_the_baseline_measured_in_the_same_run() -> None:
    result = measured("routing decisions", 300.0, "decisions/s", 1200.0)
    assert (result.value, result.baseline, result.ratio) == (300.0, 1200.0, 0.25)


def test_a_result_without_a_baseline_or_with_a_zero_one_has_no_ratio() -> None:
    assert measured("peak RSS routing", 120.5, "MB").ratio is None
    assert measured("odd", 1.0, "x", 0.0).ratio is None


def test_results_json_is_a_list_of_the_five_documented_fields(tmp_path: Path) -> None:
    path = tmp_path / "bench" / "results.json"
    write_json([measured("a", 2.0, "msg/s", 4.0), measured("b", 7.123456, "ms")], path)

    written = json.loads(path.read_text())
    assert written == [
        {"name": "a", "value": 2.0, "unit": "msg/s", "baseline": 4.0, "ratio": 0.5},
        {"name": "b", "value": 7.1235, "unit": "ms", "baseline": None, "ratio": None},
    ]


def test_the_table_has_a_row_per_result_in_order_with_aligned_columns() -> None:
    table = format_table(
        [Result("raw pass-through", 61234.0, "msg/s", 61234.0, 1.0), Result("peak RSS x", 98.76, "MB")]
    ).splitlines()

    assert table[0].split() == ["benchmark", "value", "unit", "baseline", "ratio"]
    assert set(table[1]) == {"-", " "}
    assert table[2].split()[-4:] == ["61,234", "msg/s", "61,234", "1"]
    assert table[3].split()[-4:] == ["98.8", "MB", "-", "-"]
    assert len({line.index("msg/s") for line in table[2:3]} | {table[3].index("MB")}) == 1
