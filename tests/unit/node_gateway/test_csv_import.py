"""CSV import: every row validated, errors name file, line and field, bad files import nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from node_gateway.csv_import import parse_csv
from node_gateway.errors import CsvImportError
from node_gateway.gateway import Gateway

HEADER = "device,measured_at,quantity,unit,value,cumulative,quality"
ELEC = "86.1000.1/dev.elec-01"
GAS = "86.1000.1/dev.gas-01"
GOOD_ROWS = [
    f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,12.500,1012.500,measured",
    f"{ELEC},2025-03-01T00:30:00Z,active_energy,kWh,13.000,1025.500,measured",
    f"{ELEC},2025-03-01T00:45:00Z,active_energy,kWh,11.000,,estimated",
    f"{GAS},2025-03-01T00:15:00Z,gas_volume,m3,3.250,500.000,manual",
]


def write(tmp_path: Path, *lines: str, name: str = "readings.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def problems(exc: CsvImportError) -> list[tuple[int, str | None]]:
    return [(p.line, p.field) for p in exc.problems]


def test_a_good_file_imports_every_row(tmp_path: Path, offline_gateway: Gateway) -> None:
    path = write(tmp_path, HEADER, *GOOD_ROWS)
    result = offline_gateway.import_csv(path)
    assert (result.recorded, result.unchanged) == (4, 0)
    assert result.seqs == {ELEC: (1, 3), GAS: (1, 1)}
    entries = offline_gateway.outbox.entries(ELEC)
    assert [e.value for e in entries] == ["12.500", "13.000", "11.000"]
    assert entries[2].signed_reading().reading.cumulative is None
    assert entries[2].signed_reading().reading.quality == "estimated"


def test_reimporting_the_same_file_is_a_no_op(tmp_path: Path, offline_gateway: Gateway) -> None:
    path = write(tmp_path, HEADER, *GOOD_ROWS)
    offline_gateway.import_csv(path)
    again = offline_gateway.import_csv(path)
    assert (again.recorded, again.unchanged) == (0, 4)
    assert offline_gateway.outbox.seqs(ELEC) == [1, 2, 3]


def test_columns_may_come_in_any_order_and_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(("\ufeffquality,value,device,measured_at,quantity,unit,cumulative\n"
                      f"measured,1.5,{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,\n")
                     .encode())
    (row,) = parse_csv(path)
    assert (row.line, row.measurement.value, row.measurement.cumulative) == (2, "1.5", None)


@pytest.mark.parametrize(("row", "field", "reason"), [
    (f"{ELEC},2025-03-01 00:15:00,active_energy,kWh,1.0,,measured", "measured_at", "pattern"),
    (f"{ELEC},2025-02-30T00:15:00Z,active_energy,kWh,1.0,,measured", "measured_at", "2025-02-30"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,m3,1.0,,measured", "unit", "unit 'm3'"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,1.0e3,,measured", "value", "pattern"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,-1.0,,measured", "value", "negative"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,1.0,-5,measured", "cumulative", "negative"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,,,measured", "value", "pattern"),
    (f"{ELEC},2025-03-01T00:15:00Z,electricity,kWh,1.0,,measured", "quantity", "'electricity'"),
    (f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,1.0,,guessed", "quality", "'guessed'"),
    ("dev-without-prefix,2025-03-01T00:15:00Z,active_energy,kWh,1.0,,measured", "device",
     "pattern"),
])
def test_a_bad_row_names_line_and_field_and_nothing_is_imported(
    tmp_path: Path, offline_gateway: Gateway, row: str, field: str | None, reason: str
) -> None:
    path = write(tmp_path, HEADER, *GOOD_ROWS[:2], row, *GOOD_ROWS[2:])
    with pytest.raises(CsvImportError, match=r"readings\.csv:4: ") as info:
        offline_gateway.import_csv(path)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 4, field)
    assert reason in problem.message
    assert offline_gateway.outbox.counts() == {"pending": 0, "acked": 0, "rejected": 0}
    assert all(d.next_seq == 1 for d in offline_gateway.outbox.devices())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER,
        f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,x,,measured",
        f"{ELEC},2025-03-01T00:30:00Z,active_energy,kWh,1.0,,measured,extra",
        f"{ELEC},2025-03-01T00:45:00Z,active_energy,kWh,1.0,,nope",
    )
    with pytest.raises(CsvImportError) as info:
        parse_csv(path)
    assert problems(info.value) == [(2, "value"), (3, None), (4, "quality")]
    assert "expected 7 columns, found 8" in info.value.problems[1].message
    diag = info.value.diagnostics()
    assert diag["code"] == "csv_invalid"
    assert diag["details"]["problems"][0] == {"line": 2, "field": "value",
                                              "message": info.value.problems[0].message}


@pytest.mark.parametrize(("header", "reason"), [
    ("device,measured_at,quantity,unit,value,quality", "missing cumulative"),
    (HEADER + ",note", "unknown 'note'"),
    (HEADER.replace("unit", "units"), "missing unit"),
    (HEADER + ",value", "repeated value"),
])
def test_the_header_is_required_and_exact(tmp_path: Path, header: str, reason: str) -> None:
    path = write(tmp_path, header, GOOD_ROWS[0])
    with pytest.raises(CsvImportError, match=reason) as info:
        parse_csv(path)
    assert problems(info.value) == [(1, None)]


def test_a_file_without_a_header_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, *GOOD_ROWS)  # first data row taken as the header
    with pytest.raises(CsvImportError, match=r":1: header must name the columns"):
        parse_csv(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CsvImportError, match="the file is empty"):
        parse_csv(empty)


def test_a_measurement_may_appear_once_per_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[0])
    with pytest.raises(CsvImportError, match="already appears on line 2") as info:
        parse_csv(path)
    assert problems(info.value) == [(4, "measured_at")]


def test_a_register_may_not_run_backwards(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER,
                 f"{ELEC},2025-03-01T00:30:00Z,active_energy,kWh,1.0,99.0,measured",
                 f"{ELEC},2025-03-01T00:15:00Z,active_energy,kWh,1.0,100.0,measured")
    with pytest.raises(CsvImportError, match="register runs backwards") as info:
        parse_csv(path)
    assert problems(info.value) == [(2, "cumulative")]


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "\n").encode() + "\xe9\n".encode("latin-1"))
    with pytest.raises(CsvImportError, match="not UTF-8"):
        parse_csv(path)


def test_unprovisioned_device_and_wrong_quantity_name_their_lines(
    tmp_path: Path, offline_gateway: Gateway
) -> None:
    path = write(
        tmp_path, HEADER, *GOOD_ROWS,
        "86.1000.1/dev.unknown,2025-03-01T00:15:00Z,active_energy,kWh,1.0,,measured",
        f"{GAS},2025-03-01T00:30:00Z,gas_volume,Nm3,1.0,,measured",
        f"{GAS},2025-03-01T00:45:00Z,heat,GJ,1.0,,measured",
    )
    with pytest.raises(CsvImportError, match="not provisioned") as info:
        offline_gateway.import_csv(path)
    assert problems(info.value) == [(6, "device"), (7, "unit"), (8, "quantity")]
    assert offline_gateway.outbox.counts()["pending"] == 0


def test_a_changed_value_for_a_recorded_measurement_imports_nothing(
    tmp_path: Path, offline_gateway: Gateway
) -> None:
    offline_gateway.import_csv(write(tmp_path, HEADER, GOOD_ROWS[0], name="first.csv"))
    changed = GOOD_ROWS[0].replace("12.500", "12.600")
    path = write(tmp_path, HEADER, GOOD_ROWS[1], GOOD_ROWS[3], changed, name="second.csv")
    with pytest.raises(CsvImportError, match=r"second\.csv:4: value: .*recorded before") as info:
        offline_gateway.import_csv(path)
    assert problems(info.value) == [(4, "value")]
    assert offline_gateway.outbox.counts()["pending"] == 1  # only the first file's row
    assert offline_gateway.outbox.seqs(ELEC) == [1]
    assert offline_gateway.outbox.seqs(GAS) == []
