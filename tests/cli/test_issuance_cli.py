"""The issuance commands on a private server: roles (`user grant --role`), the project policy
(`project policy`), revocation (`cert revoke`) and what revocation means to `ca retire`; each
refusal one line and exit 1, each change in the audit trail."""

from __future__ import annotations

import pytest
from support.server import EXIT_ERROR, EXIT_USAGE, CsscertServer, ServerFactory


@pytest.fixture(scope="module")
def private(make_server: ServerFactory) -> CsscertServer:
    return make_server()


def test_roles_are_granted_listed_and_taken_back(private: CsscertServer) -> None:
    private.cli("user", "create", "ada", "--project", private.project_id)
    private.cli("user", "grant", "ada", "--role", "certificate-issuer")
    users = {u["name"]: u for u in private.cli_json("user", "list")}
    assert users["ada"]["roles"] == ["certificate-issuer"]
    assert users["csscert-admin"]["roles"] == ["administrator", "certificate-issuer"]
    again = private.cli("user", "grant", "ada", "--role", "certificate-issuer", check=False)
    assert again.returncode == EXIT_ERROR and "already has role certificate-issuer" in again.stderr
    private.cli("user", "revoke-grant", "ada", "--role", "certificate-issuer")
    assert {u["name"]: u for u in private.cli_json("user", "list")}["ada"]["roles"] == []
    missing = private.cli("user", "revoke-grant", "ada", "--role", "certificate-issuer", check=False)
    assert missing.returncode == EXIT_ERROR and "does not have role" in missing.stderr
    both = private.cli("user", "grant", "ada", "--role", "administrator", "--project", "x", check=False)
    assert both.returncode == EXIT_USAGE and "exactly one of --project or --role" in both.stderr
    unknown = private.cli("user", "grant", "ada", "--role", "root", check=False)
    assert unknown.returncode == EXIT_USAGE
    actions = [r["action"] for r in private.cli_json("audit", "list")]
    assert "user.grant-role" in actions and "user.revoke-role" in actions


def test_the_policy_is_set_shown_obeyed_by_the_cli_and_cleared(private: CsscertServer) -> None:
    project = private.project_id
    shown = private.cli_json("project", "policy", project)
    assert shown["policy"] is None
    set_ = private.cli_json(
        "project",
        "policy",
        project,
        "--allow-dns",
        "*.Search.Internal.",
        "--allow-ip",
        "10.0.0.7",
        "--max-days",
        "20",
    )
    assert set_["policy"] == {"allow_dns": ["*.search.internal"], "allow_ip": ["10.0.0.7/32"], "max_days": 20}
    assert private.cli_json("project", "policy", project)["policy"] == set_["policy"]
    out = private.data_dir.parent / "policy-out"
    refused = private.cli(
        "cert", "issue", "--name", "n1", "--dns", "n1.other.internal", "--out", str(out), check=False
    )
    assert refused.returncode == EXIT_ERROR
    assert "'n1.other.internal' is not allowed by the project's issuance policy" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    issued = private.cli_json(
        "cert", "issue", "--name", "n1", "--dns", "n1.search.internal", "--ip", "10.0.0.7", "--out", str(out)
    )
    assert issued["name"] == "n1"
    long = private.cli("cert", "issue", "--name", "n2", "--dns", "n2.search.internal", "--days", "21",
                       "--out", str(out), check=False)  # fmt: skip
    assert long.returncode == EXIT_ERROR and "21 days" in long.stderr
    bad = private.cli("project", "policy", project, "--allow-dns", "a.*.com", check=False)
    assert bad.returncode == EXIT_ERROR and "a.*.com" in bad.stderr
    private.cli("project", "policy", project, "--clear")
    assert private.cli_json("project", "policy", project)["policy"] is None
    actions = [r["action"] for r in private.cli_json("audit", "list")]
    assert "project.policy" in actions and "project.policy-clear" in actions


def test_cert_revoke_by_name_and_by_serial(private: CsscertServer) -> None:
    out = private.data_dir.parent / "revoke-out"
    first = private.cli_json("cert", "issue", "--name", "r1", "--dns", "r1.x", "--out", str(out))
    second = private.cli_json("cert", "issue", "--name", "r2", "--dns", "r2.x", "--out", str(out))
    by_name = private.cli_json("cert", "revoke", "r1", "--reason", "keyCompromise")
    assert by_name["serial"] == first["serial"] and by_name["status"] == "revoked"
    assert by_name["reason"] == "keyCompromise" and by_name["crl_url"].startswith(private.url + "/v1.0/crl/")
    colons = ":".join(second["serial"][i : i + 2] for i in range(0, len(second["serial"]), 2)).upper()
    by_serial = private.cli_json("cert", "revoke", colons, "--reason", "superseded")
    assert by_serial["serial"] == second["serial"]
    twice = private.cli("cert", "revoke", "r1", "--reason", "keyCompromise", check=False)
    assert twice.returncode == EXIT_ERROR and "already revoked" in twice.stderr
    nothing = private.cli("cert", "revoke", "no-such", "--reason", "keyCompromise", check=False)
    assert nothing.returncode == EXIT_ERROR and "no certificate named 'no-such'" in nothing.stderr
    hold = private.cli("cert", "revoke", "r2", "--reason", "certificateHold", check=False)
    assert hold.returncode == EXIT_USAGE  # a revocation here is final
    listed = {r["serial"]: r for r in private.cli_json("cert", "list", "--all")}
    assert listed[first["serial"]]["status"] == "revoked"
    assert listed[first["serial"]]["revocation_reason"] == "keyCompromise"


def test_ca_retire_counts_a_revoked_certificate_as_no_longer_blocking(private: CsscertServer) -> None:
    out = private.data_dir.parent / "retire-out"
    old = private.cli_json("ca", "show")["fingerprint_sha256"]
    private.cli("cert", "issue", "--name", "old-1", "--dns", "old-1.x", "--out", str(out))
    private.cli("ca", "rotate")
    blocked = private.cli("ca", "retire", old, check=False)
    assert blocked.returncode == EXIT_ERROR and "old-1" in blocked.stderr
    live = [
        r
        for r in private.cli_json("cert", "list")
        if r["status"] == "valid" and r["ca_fingerprint_sha256"] == old
    ]
    assert "old-1" in {r["name"] for r in live}
    for row in live:  # every live certificate of the old CA, whichever tests made them
        private.cli("cert", "revoke", row["serial"], "--reason", "cessationOfOperation")
    retired = private.cli_json("ca", "retire", old)
    assert retired["unexpired_node_certificates"] == []


def test_cert_list_pages(private: CsscertServer) -> None:
    out = private.data_dir.parent / "page-out"
    for name in ("page-1", "page-2"):  # whatever else this server holds (tests may run apart)
        private.cli("cert", "issue", "--name", name, "--dns", f"{name}.x", "--out", str(out))
    page = private.cli("cert", "list", "--all", "--limit", "1", "--json")
    assert page.returncode == 0 and "more certificates follow: --after" in page.stderr
    after = page.stderr.split("--after", 1)[1].strip()
    rest = private.cli_json("cert", "list", "--all", "--after", after)
    assert rest and all(r["serial"] != after for r in rest)
