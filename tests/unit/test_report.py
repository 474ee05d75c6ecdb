"""Audit reports: validation, strict (de)serialisation, signing, tamper evidence."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from typing import Any

import numpy as np
import pytest

from protocol.canonical_json import canonical_json
from protocol.decision import Decision, OutputDecision
from protocol.errors import InvalidArgument, SignatureError
from protocol.plan import PlanRequest, make_plan
from protocol.report import (
    REPORT_VERSION,
    SOUNDNESS_PRACTICAL,
    SOUNDNESS_RIGOROUS,
    AuditReport,
    OutputResult,
    load_report_unverified,
    outputs_from_decision,
    plan_summary,
    report_public_key,
    sign_report,
    utc_timestamp,
    verify_report,
)
from protocol.signing import generate_private_key, key_id, public_key_bytes

KEY = generate_private_key()
DIGEST = "sha256:" + "ab" * 32


@cache
def _plan_dict() -> dict[str, Any]:
    return plan_summary(make_plan(PlanRequest(epsilon=0.5, delta=0.1, bound=1.0, n_outputs=2)))


def _output(z: int, *, accept: bool = True, upper: float = 0.3) -> OutputResult:
    return OutputResult(
        output=z,
        estimate=0.01 * (z + 1),
        standard_error=0.002,
        interval_low=-0.05,
        interval_high=0.1,
        certified_upper=upper,
        accept=accept,
        reason="" if accept else f"output {z}: estimated err too large",
    )


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "pacda_version": "0.1.0",
        "created_at": "2025-01-31T12:00:00Z",
        "task_digest": DIGEST,
        "attribution_digest": "sha256:" + "cd" * 32,
        "mode": "committed",
        "planning": "rigorous",
        "plan": _plan_dict(),
        "outputs": (_output(0, upper=0.25), _output(1, upper=0.3)),
        "certified_upper_bound": 0.3,
        "decision": "accept",
        "reason": "",
        "merkle_root": "01" * 32,
        "challenge_seed": "02" * 32,
        "prover_public_key": "03" * 32,
        "prover_commitment_signature": "04" * 64,
        "prover_root_signature": "05" * 64,
        "variance_verified": 0.25,
        "epsilon_relative": 2.0,
        "costs": {
            "verifier_retrainings": 12,
            "prover_evaluations": 400,
            "bytes_received": 123456,
            "spot_checks": 10,
            "wall_seconds": 1.5,
        },
        "soundness_basis": SOUNDNESS_RIGOROUS,
    }
    fields.update(overrides)
    return fields


def _report(**overrides: Any) -> AuditReport:
    return AuditReport(**_fields(**overrides))


def test_round_trip_through_dict_and_json() -> None:
    report = _report()
    assert report.version == REPORT_VERSION
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert AuditReport.from_dict(d) == report
    assert AuditReport.from_dict(json.loads(canonical_json(d))) == report


def test_an_abort_before_planning_is_representable() -> None:
    report = _report(
        plan=None,
        outputs=(),
        certified_upper_bound=None,
        decision="abort",
        reason="task digest mismatch: the Prover serves a different task",
        attribution_digest="",
        merkle_root="",
        challenge_seed="",
        prover_commitment_signature="",
        prover_root_signature="",
        variance_verified=None,
        epsilon_relative=None,
    )
    assert AuditReport.from_dict(report.to_dict()) == report


def test_local_mode_accept_needs_no_prover_fields() -> None:
    report = _report(
        mode="local",
        merkle_root="",
        challenge_seed="",
        prover_public_key="",
        prover_commitment_signature="",
        prover_root_signature="",
    )
    assert report.mode == "local"


def test_numbers_are_normalised_to_float() -> None:
    report = _report(variance_verified=1, epsilon_relative=0.5, certified_upper_bound=0.3)
    assert isinstance(report.variance_verified, float)
    assert isinstance(report.outputs[0].estimate, float)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": "pacda-report-v0"}, "unsupported report version 'pacda-report-v0'"),
        ({"pacda_version": ""}, "pacda_version must not be empty"),
        ({"created_at": "2025-01-31 12:00:00"}, "created_at must be an RFC 3339 UTC timestamp"),
        ({"created_at": "2025-02-30T12:00:00Z"}, "created_at is not a valid date"),
        ({"task_digest": "sha256:AB"}, "task_digest must be 'sha256:' \\+ 64 lowercase hex"),
        ({"attribution_digest": "md5:00"}, "attribution_digest must be 'sha256:'"),
        ({"mode": "fast"}, "mode must be one of committed, paper, local; got 'fast'"),
        ({"planning": "loose"}, "planning must be rigorous or practical, got 'loose'"),
        ({"decision": "maybe"}, "decision must be 'accept' or 'abort', got 'maybe'"),
        ({"decision": "abort", "reason": " "}, "an aborted report needs a human-readable reason"),
        ({"reason": "why"}, "an accepted report has an empty reason"),
        ({"certified_upper_bound": 0.25}, "largest certified_upper of the outputs"),
        ({"certified_upper_bound": float("nan")}, "certified_upper_bound must be finite"),
        ({"certified_upper_bound": True}, "certified_upper_bound must be a number, got bool"),
        ({"merkle_root": "AB" * 32}, "merkle_root must be 32 bytes as lowercase hex"),
        ({"prover_root_signature": "05" * 63}, "prover_root_signature must be 64 bytes"),
        ({"merkle_root": ""}, "an accepted committed-mode report must record merkle_root"),
        ({"attribution_digest": ""}, "must record attribution_digest"),
        ({"variance_verified": -1.0}, "variance_verified must be >= 0"),
        ({"variance_verified": False}, "variance_verified must be a number, got bool"),
        ({"variance_verified": None}, "epsilon_relative needs a positive variance_verified"),
        ({"epsilon_relative": 3.0}, "epsilon_relative 3.0 is not epsilon / variance_verified"),
        ({"soundness_basis": SOUNDNESS_PRACTICAL}, "soundness_basis must start with 'rigorous: '"),
        ({"costs": {"wall_seconds": 1.0}}, "costs: missing field 'bytes_received'"),
        ({"plan": {**_plan_dict(), "extra": 1}}, "plan: unknown field 'extra'"),
        ({"plan": {**_plan_dict(), "nodes": []}}, "must be non-empty and equally long"),
        ({"plan": {**_plan_dict(), "epsilon": float("inf")}}, "plan.epsilon must be finite"),
        ({"outputs": (_output(1), _output(0))}, r"outputs\[0\] has output index 1, expected 0"),
        ({"outputs": (_output(0),), "certified_upper_bound": 0.3}, "report has 1 outputs but"),
        ({"outputs": (), "certified_upper_bound": None}, "needs a plan and per-output results"),
        (
            {"outputs": (_output(0), _output(1, accept=False))},
            r"decision is accept but outputs \[1\] were rejected",
        ),
    ],
)
def test_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _report(**overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"standard_error": -1.0}, r"outputs\[0\].standard_error must be >= 0"),
        ({"estimate": float("inf")}, r"outputs\[0\].estimate must be finite"),
        ({"interval_low": 1.0}, r"outputs\[0\]: interval_low exceeds interval_high"),
        ({"accept": 1}, r"outputs\[0\].accept must be true or false"),
        ({"reason": "x"}, "an accepted output has an empty reason"),
        ({"accept": False}, "a rejected output needs a reason"),
        ({"output": -1}, r"output must lie in \[0, 2\^53\)"),
    ],
)
def test_output_validation(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        dataclasses.replace(_output(0), **overrides)


def test_from_dict_is_strict_and_names_the_key() -> None:
    d = _report().to_dict()
    with pytest.raises(InvalidArgument, match="report: unknown field 'extra'"):
        AuditReport.from_dict({**d, "extra": 1})
    del d["merkle_root"]
    with pytest.raises(InvalidArgument, match="report: missing field 'merkle_root'"):
        AuditReport.from_dict(d)
    d = _report().to_dict()
    d["outputs"][1]["bogus"] = 0
    with pytest.raises(InvalidArgument, match=r"outputs\[1\]: unknown field 'bogus'"):
        AuditReport.from_dict(d)
    d = _report().to_dict()
    del d["plan"]["budget"][0]["note"]
    with pytest.raises(InvalidArgument, match=r"plan.budget\[0\]: missing field 'note'"):
        AuditReport.from_dict(d)
    with pytest.raises(InvalidArgument, match="report must be an object, got list"):
        AuditReport.from_dict([])


def test_plan_summary_records_the_plan_and_its_budget() -> None:
    plan = make_plan(PlanRequest(epsilon=0.5, delta=0.1, bound=1.0, n_outputs=2))
    s = plan_summary(plan)
    assert s["nodes"] == list(plan.functional.nodes)
    assert s["pairs_per_node"] == list(plan.pairs_per_node)
    assert s["prover_evaluations"] == plan.prover_evaluations
    assert s["spot_checks"] == plan.spot_checks
    assert s["threshold"] == plan.threshold == 0.25
    assert [b["name"] for b in s["budget"]] == [b.name for b in plan.budget] + ["slack"]
    assert s["estimator"] == "chebyshev"
    canonical_json(s)  # JSON types only


def test_outputs_from_decision() -> None:
    decision = Decision(
        accept=False,
        threshold=0.25,
        outputs=(
            OutputDecision(
                output=0,
                estimate=np.float64(0.1),
                standard_error=0.01,
                interval=(0.05, 0.15),
                certified_upper=0.2,
                accept=True,
                clipped_fraction=0.0,
                reason="",
            ),
            OutputDecision(
                output=1,
                estimate=0.4,
                standard_error=0.01,
                interval=(0.35, 0.45),
                certified_upper=0.5,
                accept=False,
                clipped_fraction=0.0,
                reason="output 1: estimated err 0.4 exceeds the threshold 0.25 (eps/2)",
            ),
        ),
    )
    outs = outputs_from_decision(decision)
    assert outs[0] == OutputResult(
        output=0,
        estimate=0.1,
        standard_error=0.01,
        interval_low=0.05,
        interval_high=0.15,
        certified_upper=0.2,
        accept=True,
        reason="",
    )
    assert type(outs[0].estimate) is float
    report = _report(
        outputs=outs, certified_upper_bound=0.5, decision="abort", reason=decision.reason
    )
    assert report.reason.startswith("output 1: estimated err 0.4")


def test_sign_and_verify() -> None:
    report = _report()
    document = sign_report(report, KEY)
    assert not document.endswith(b"\n")
    assert canonical_json(json.loads(document)) == document
    assert verify_report(document, KEY.public_key()) == report
    assert load_report_unverified(document) == report
    assert key_id(report_public_key(document)) == key_id(KEY)
    parsed = json.loads(document)
    assert parsed["signature"]["algorithm"] == "ed25519"
    assert parsed["signature"]["public_key"] == public_key_bytes(KEY.public_key()).hex()


def test_a_different_key_is_rejected() -> None:
    document = sign_report(_report(), KEY)
    other = generate_private_key()
    with pytest.raises(SignatureError, match="not by the expected key ed25519:"):
        verify_report(document, other.public_key())
    # An attacker re-signing with their own key and embedding it is still refused.
    forged = sign_report(_report(decision="abort", reason="forged"), other)
    with pytest.raises(SignatureError, match="not by the expected key"):
        verify_report(forged, KEY.public_key())


def test_a_resigned_body_with_the_right_key_embedded_fails_the_signature() -> None:
    document = json.loads(sign_report(_report(), KEY))
    document["report"]["reason"] = "tampered"
    document["report"]["decision"] = "abort"
    with pytest.raises(SignatureError, match="does not verify under"):
        verify_report(canonical_json(document), KEY.public_key())


def test_non_canonical_but_equivalent_documents_are_rejected() -> None:
    document = sign_report(_report(), KEY)
    parsed = json.loads(document)
    variants = [
        document + b"\n",
        b" " + document,
        json.dumps(parsed).encode(),
        json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode(),  # ASCII escapes?
        document.replace(b'"decision":"accept"', b'"decision":"\\u0061ccept"'),
        document.replace(b'"decision":"accept"', b'"decision":"accept","decision":"accept"'),
    ]
    for variant in variants:
        if variant == document:
            continue
        with pytest.raises((SignatureError, InvalidArgument)):
            verify_report(variant, KEY.public_key())


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        (b"\xff\xfe", InvalidArgument, "report is not UTF-8"),
        (b"{", InvalidArgument, "report is not valid JSON"),
        (b'{"a":NaN}', InvalidArgument, "NaN is not a JSON number"),
        (b'{"a":1,"a":2}', InvalidArgument, "duplicate key 'a'"),
        (b"[" * 100000 + b"]" * 100000, InvalidArgument, "nested too deeply|not valid JSON"),
        (b"[]", InvalidArgument, "report file must be an object, got list"),
        (b'{"report":{}}', InvalidArgument, "report file: missing field 'signature'"),
        (b'"\\ud800"', InvalidArgument, "not valid Unicode"),
    ],
)
def test_malformed_documents(document: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        verify_report(document, KEY.public_key())


def test_malformed_signature_blocks() -> None:
    good = json.loads(sign_report(_report(), KEY))
    cases = [
        ({"algorithm": "rsa"}, "unsupported signature algorithm 'rsa'"),
        ({"public_key": good["signature"]["public_key"].upper()}, "public_key must be 32 bytes"),
        ({"value": good["signature"]["value"][:-2]}, "value must be 64 bytes as lowercase hex"),
        ({"extra": 1}, "signature: unknown field 'extra'"),
    ]
    for change, message in cases:
        doc = {**good, "signature": {**good["signature"], **change}}
        with pytest.raises(InvalidArgument, match=message):
            verify_report(canonical_json(doc), KEY.public_key())
        with pytest.raises(InvalidArgument, match=message):
            load_report_unverified(canonical_json(doc))


def _small_report() -> AuditReport:
    """One output, three nodes, one budget line: about 1.6 kB signed."""
    plan = plan_summary(
        make_plan(PlanRequest(epsilon=0.5, delta=0.1, bound=1.0, estimator="three-point"))
    )
    plan["budget"] = plan["budget"][:1]
    return _report(plan=plan, outputs=(_output(0, upper=0.3),), certified_upper_bound=0.3)


def _rejects(document: bytes) -> bool:
    try:
        verify_report(document, KEY.public_key())
    except (SignatureError, InvalidArgument):
        return True
    return False


def test_every_single_byte_edit_is_rejected() -> None:
    """Flip, replace, insert and delete at every byte position of a signed report.

    Also flips the ASCII case of every letter (hex digits ``a``-``f`` decode to the
    same bytes in either case, so lowercase is enforced).
    """
    document = sign_report(_small_report(), KEY)
    verify_report(document, KEY.public_key())
    variants: list[tuple[str, int, bytes]] = []
    for pos in range(len(document) + 1):
        head, tail = document[:pos], document[pos:]
        variants.append(("insert", pos, head + (b" " if pos % 2 else b"0") + tail))
        if pos == len(document):
            break
        byte, rest = document[pos], document[pos + 1 :]
        variants.append(("flip", pos, head + bytes([byte ^ 0x01]) + rest))
        variants.append(("replace", pos, head + (b"1" if byte == ord("0") else b"0") + rest))
        variants.append(("delete", pos, head + rest))
        if chr(byte).isalpha():
            variants.append(("case", pos, head + bytes([byte ^ 0x20]) + rest))
    accepted = [(kind, pos) for kind, pos, v in variants if v == document or not _rejects(v)]
    assert accepted == []
    assert len(variants) > 4 * len(document)


def test_utc_timestamp_format() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2025, 1, 31, 13, 0, 5, 123, tzinfo=timezone(timedelta(hours=1)))
    assert utc_timestamp(moment) == "2025-01-31T12:00:05Z"
    assert _report(created_at=utc_timestamp()).created_at.endswith("Z")
    assert utc_timestamp(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00Z"
