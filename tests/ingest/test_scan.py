"""Tests for ingest.scan: which files an ingest run picks up."""

from __future__ import annotations

from pathlib import Path

from ingest.scan import scan


def test_hidden_entries_and_office_lock_files_are_not_scanned(tmp_path: Path) -> None:
    (tmp_path / "report.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "~$report.docx").write_bytes(b"\x0cOwner name")  # Word's lock file
    (tmp_path / ".draft.md").write_text("# hidden")
    (tmp_path / "notes.xyz").write_text("?")
    entries, skipped = scan([tmp_path])
    assert [e.path.name for e in entries] == ["report.docx"]
    assert [reason for _, reason in skipped] == ["unsupported file type '.xyz'"]
