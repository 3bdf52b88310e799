"""`gateway routes …` as an operator uses it: a scripted session, its audit trail, and exact round trips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gw(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GATEWAY_DATABASE_URL", db_url)
    monkeypatch.setenv("GATEWAY_ROUTING_SNAPSHOT_FILE", str(tmp_path / "snap.json"))
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str, code: int = 0) -> str:
        capsys.readouterr()
        assert main(list(argv)) == code, capsys.readouterr()
        out = capsys.readouterr()
        return out.out if code == 0 else out.out + out.err

    run("db", "upgrade")  # routes commands other than bootstrap never migrate
    return run


def test_scripted_session_and_audit(gw) -> None:  # type: ignore[no-untyped-def]
    a = ["--author", "anna"]
    gw("routes", "add-component", "SE5565594230-1177", "--description", "1177", *a)
    gw("routes", "add-component", "SE2321000016-DEV1", *a)
    gw("routes", "add-contract", "RegisterCase", *a)
    gw("routes", "add-address", "SE2321000016-U001", *a)
    gw(
        "routes",
        "add-endpoint",
        "dev1",
        "--component",
        "SE2321000016-DEV1",
        "--url",
        "https://dev1.example/rc",
        *a,
    )
    gw(
        "routes",
        "add-route",
        "RegisterCase",
        "SE2321000016-U001",
        "internal",
        "--to",
        "2027-01-01T00:00:00Z",
        *a,
    )
    gw(
        "routes",
        "add-route",
        "RegisterCase",
        "SE2321000016-U001",
        "dev1",
        "--from",
        "2027-01-01T00:00:00Z",
        *a,
    )
    gw("routes", "add-permission", "SE5565594230-1177", "RegisterCase", "*", *a)
    diff = gw("routes", "diff")
    assert "+ routes" in diff
    assert "problems" not in diff
    assert gw("routes", "publish", "-m", "first", *a).startswith("published version 1 ")

    # a scheduled cut-over, visible through resolve without another publish
    before = json.loads(
        gw(
            "routes",
            "resolve",
            "RegisterCase",
            "SE2321000016-U001",
            "--consumer",
            "SE5565594230-1177",
            "--at",
            "2026-12-31T23:59:59Z",
            "--json",
        )
    )
    after = json.loads(
        gw("routes", "resolve", "RegisterCase", "SE2321000016-U001", "--at", "2027-01-01T00:00:00Z", "--json")
    )
    assert before["route"]["target"] == "internal"
    assert before["access"]["granted"] is True
    assert after["route"]["target"] == "dev1"
    denied = gw(
        "routes", "resolve", "RegisterCase", "SE2321000016-U001", "--consumer", "SE2321000016-DEV1", code=1
    )
    assert "DENIED" in denied
    assert "VP007" in denied

    gw("routes", "remove", "permission", "SE5565594230-1177", "RegisterCase", "*", *a)
    gw("routes", "publish", "-m", "second", *a)
    assert gw("routes", "rollback", "1", *a).startswith("published version 3 = content of version 1")
    history = json.loads(gw("routes", "history", "--json"))
    assert [h["version"] for h in history] == [1, 2, 3]
    assert history[0]["hash"] == history[2]["hash"]
    assert history[2]["active"]

    audit = json.loads(gw("routes", "audit", "--json"))
    steps = [(r["action"], r["entity"], r["actor"]) for r in audit]
    assert steps == [
        ("add", "components", "anna"),
        ("add", "components", "anna"),
        ("add", "contracts", "anna"),
        ("add", "addresses", "anna"),
        ("add", "endpoints", "anna"),
        ("add", "routes", "anna"),
        ("add", "routes", "anna"),
        ("add", "permissions", "anna"),
        ("publish", "version", "anna"),
        ("remove", "permissions", "anna"),
        ("publish", "version", "anna"),
        ("rollback", "permissions", "anna"),
        ("rollback", "version", "anna"),
    ]
    removed = audit[9]
    assert removed["after"] is None
    assert "SE5565594230-1177" in removed["before"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["routes", "add-component", "not an hsa id"], "not a valid HSA-id"),
        (
            ["routes", "add-endpoint", "x", "--component", "SE2321000016-NOPE", "--url", "https://a/b"],
            "unknown component SE2321000016-NOPE",
        ),
        (["routes", "add-route", "RegisterCase", "SE2321000016-U001", "internal"], "unknown contract"),
        (
            ["routes", "add-route", "NoSuchContract", "SE2321000016-U001", "internal"],
            "unknown contract 'NoSuchContract'",
        ),
        (["routes", "publish", "-m", "empty"], "refusing to publish an empty catalogue"),
        (["routes", "rollback", "7"], "no version 7"),
        (["routes", "import", "missing.yaml"], "missing.yaml"),
        (
            ["routes", "add-route", "RegisterCase", "SE1", "internal", "--from", "tomorrow"],
            "unknown contract",
        ),
    ],
)
def test_one_line_errors(gw, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    err = gw(*argv, code=2)
    assert message in err
    assert err.count("\n") == 1


def test_invalid_instant_and_url_and_overlap(gw) -> None:  # type: ignore[no-untyped-def]
    gw("routes", "import", str(ROOT / "examples" / "routing.yaml"))
    assert "not an ISO 8601 instant" in gw(
        "routes", "add-route", "RegisterCase", "SE2321000016-VG01", "internal", "--from", "tomorrow", code=2
    )
    assert "not an http(s) URL" in gw(
        "routes", "add-endpoint", "x", "--component", "SE2321000016-DEV1", "--url", "ftp://x", code=2
    )
    assert "overlapping validity" in gw(
        "routes",
        "add-route",
        "RegisterCase",
        "SE2321000016-7Q6X",
        "internal",
        "--from",
        "2030-01-01T00:00:00Z",
        code=2,
    )


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_import_export_is_byte_identical(gw, tmp_path: Path, fmt: str) -> None:  # type: ignore[no-untyped-def]
    gw("routes", "import", str(ROOT / "examples" / "routing.yaml"))
    gw("routes", "publish", "-m", "example", "--force")
    first = gw("routes", "export", "--format", fmt)
    exported = tmp_path / f"cat.{fmt}"
    exported.write_text(first)
    gw("routes", "import", str(exported))
    assert gw("routes", "diff").strip() == "the draft equals the active version"
    assert gw("routes", "export", "--draft", "--format", fmt) == first


def test_csv_unit_list_and_hsa_tree(gw, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    gw("routes", "import", str(ROOT / "examples" / "routing.yaml"))
    units = tmp_path / "units.csv"
    units.write_text(
        "address,target,description\nSE2321000016-N001,internal,Ny enhet 1\n"
        "SE2321000016-N002,deviation-a,Ny enhet 2\n"
    )
    gw("routes", "import", str(units), "--contract", "RegisterCase")
    tree = tmp_path / "hsa.csv"
    tree.write_text(
        "hsa_id,parent,kind,name\nSE2321000016-N001,SE2321000016-VG01,unit,Ny\n"
        "SE2321000016-VG01,SE2321000016-R001,care-provider,VG\nSE2321000016-R001,SE,region,R\n"
    )
    gw("routes", "hsa", "import", str(tree))
    out = json.loads(gw("routes", "resolve", "RegisterCase", "SE2321000016-N002", "--draft", "--json"))
    assert out["route"]["target"] == "deviation-a"
    assert len(json.loads(gw("routes", "list", "--json"))["hsa"]) == 3


def test_routes_command_family_in_a_subprocess(db_url: str, tmp_path: Path) -> None:
    env = {"GATEWAY_DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "gateway.cli", "routes"]
    boot = subprocess.run(
        [*cmd, "bootstrap", str(ROOT / "examples" / "routing.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert boot.returncode == 0, boot.stderr
    listed = subprocess.run(
        [*cmd, "list", "--active"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert "SE2321000016-7Q6X" in listed.stdout
    shown = subprocess.run([*cmd, "show"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert shown.stdout.startswith("# version: 1\n")


def test_every_state_changing_command_prints_what_changed_as_json(gw, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    example = str(ROOT / "examples" / "routing.yaml")
    boot = json.loads(gw("routes", "bootstrap", example, "--json", "--author", "anna"))
    assert boot["action"] == "bootstrap"
    assert boot["published"] is True
    assert (boot["version"], boot["author"], boot["active"]) == (1, "anna", True)
    assert len(boot["hash"]) == 64
    again = json.loads(gw("routes", "bootstrap", example, "--json"))
    assert again == {"action": "bootstrap", "published": False, "version": 1, "hash": boot["hash"]}

    added = json.loads(gw("routes", "add-address", "SE2321000016-N009", "--json"))
    assert added == {"action": "add", "section": "addresses", "key": ["SE2321000016-N009"], "replace": False}
    route = json.loads(
        gw("routes", "add-route", "RegisterCase", "SE2321000016-N009", "internal", "--json", "--replace")
    )
    assert route["section"] == "routes"
    assert route["key"][1:] == ["SE2321000016-N009"]
    assert route["replace"] is True
    removed = json.loads(gw("routes", "remove", "route", "RegisterCase", "SE2321000016-N009", "--json"))
    assert removed == {"action": "remove", "section": "routes", "key": ["RegisterCase", "SE2321000016-N009"]}

    published = json.loads(gw("routes", "publish", "-m", "one more address", "--json"))
    assert published["action"] == "publish"
    assert (published["version"], published["comment"]) == (2, "one more address")
    rolled = json.loads(gw("routes", "rollback", "1", "--json"))
    assert (rolled["action"], rolled["contentOf"], rolled["version"]) == ("rollback", 1, 3)
    assert rolled["hash"] == boot["hash"]

    exported = tmp_path / "cat.yaml"
    exported.write_text(gw("routes", "export"))
    imported = json.loads(gw("routes", "import", str(exported), "--json"))
    assert imported == {"action": "import", "file": "cat.yaml", "added": [], "removed": [], "changed": []}
    tree = tmp_path / "hsa.csv"
    tree.write_text("hsa_id,parent,kind,name\nSE2321000016-R001,SE,region,R\n")
    hsa = json.loads(gw("routes", "hsa", "import", str(tree), "--json"))
    assert (hsa["action"], hsa["file"], hsa["nodes"]) == ("hsa-import", "hsa.csv", 1)
    assert "hsa SE2321000016-7Q6X" in hsa["removed"]


def test_db_upgrade_and_certs_example_print_what_changed_as_json(  # type: ignore[no-untyped-def]
    gw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")  # not yet migrated
    first = json.loads(gw("db", "upgrade", "--json"))
    assert first["action"] == "upgrade"
    assert first["from"] is None
    assert first["current"] == first["head"]
    assert first["upgraded"] is True
    second = json.loads(gw("db", "upgrade", "--json"))
    assert (second["from"], second["upgraded"]) == (first["head"], False)

    made = json.loads(gw("certs", "example", "--out", str(tmp_path / "pki"), "--json"))
    assert made["generated"] is True
    assert made["clients"]["gateway"] == "SE2321000016-GW01"
    kept = json.loads(gw("certs", "example", "--out", str(tmp_path / "pki"), "--json"))
    assert kept["generated"] is False
    assert gw("certs", "example", "--out", str(tmp_path / "pki")).startswith(
        "example certificates already in"
    )
