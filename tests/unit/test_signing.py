"""Ed25519 keys, key files and signatures over canonical JSON."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocol.canonical_json import canonical_json
from protocol.errors import InvalidArgument, SignatureError
from protocol.signing import (
    commitment_statement,
    default_verifier_key_path,
    generate_private_key,
    key_id,
    load_or_create_default_key,
    load_private_key,
    load_public_key,
    public_key_bytes,
    public_key_from_bytes,
    root_statement,
    sign_json,
    verify_json,
    write_keypair,
)

# RFC 8032 §7.1, TEST 1 (empty message).
RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def test_rfc8032_vector() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(RFC8032_SECRET)
    assert public_key_bytes(key.public_key()) == RFC8032_PUBLIC
    assert key.sign(b"") == RFC8032_SIGNATURE
    assert key_id(key) == key_id(key.public_key()) == "ed25519:" + RFC8032_PUBLIC.hex()


def test_sign_and_verify_canonical_json() -> None:
    key = generate_private_key()
    obj = {"b": [1, 2.5, None], "a": "x"}
    sig = sign_json(key, obj)
    assert len(sig) == 64
    assert key.public_key().verify(sig, canonical_json(obj)) is None
    verify_json(key.public_key(), {"a": "x", "b": (1, 2.5, None)}, sig)  # same canonical form
    with pytest.raises(SignatureError, match="does not verify under ed25519:"):
        verify_json(key.public_key(), {"a": "y", "b": [1, 2.5, None]}, sig)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_json(generate_private_key().public_key(), obj, sig)
    bad = bytes([sig[0] ^ 1]) + sig[1:]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_json(key.public_key(), obj, bad)
    with pytest.raises(SignatureError, match="signature is 64 bytes, got 63"):
        verify_json(key.public_key(), obj, sig[:63])
    with pytest.raises(InvalidArgument, match="canonical JSON cannot encode nan"):
        sign_json(key, {"x": float("nan")})


def test_raw_public_keys_round_trip() -> None:
    public = generate_private_key().public_key()
    raw = public_key_bytes(public)
    assert len(raw) == 32
    assert public_key_bytes(public_key_from_bytes(raw)) == raw
    with pytest.raises(InvalidArgument, match="32 raw bytes, got 31"):
        public_key_from_bytes(raw[:31])
    with pytest.raises(InvalidArgument, match="32 raw bytes, got str"):
        public_key_from_bytes(raw.hex())  # type: ignore[arg-type]


def test_write_keypair_modes_formats_and_refusal(tmp_path: Path) -> None:
    prefix = tmp_path / "sub" / "prover.v1"  # dots in the prefix are kept
    key_path, pub_path = write_keypair(prefix)
    assert key_path == tmp_path / "sub" / "prover.v1.key"
    assert pub_path == tmp_path / "sub" / "prover.v1.pub"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private, public = load_private_key(key_path), load_public_key(pub_path)
    assert key_id(private) == key_id(public)
    before = key_path.read_bytes()
    with pytest.raises(
        InvalidArgument, match=f"refusing to overwrite existing key file {key_path}"
    ):
        write_keypair(prefix)
    assert key_path.read_bytes() == before
    write_keypair(prefix, overwrite=True)
    assert key_path.read_bytes() != before
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_id(load_private_key(key_path)) == key_id(load_public_key(pub_path))
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["prover.v1.key", "prover.v1.pub"]


def test_write_keypair_refuses_when_only_the_public_file_exists(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("x")
    with pytest.raises(InvalidArgument, match=r"existing key file .*k\.pub"):
        write_keypair(tmp_path / "k")
    assert not (tmp_path / "k.key").exists()


def test_write_keypair_key_mode_ignores_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        key_path, _ = write_keypair(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_loading_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"private key file .*missing\.key does not exist"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(InvalidArgument, match=r"public key file .*missing\.pub does not exist"):
        load_public_key(tmp_path / "missing.pub")
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a key")
    with pytest.raises(InvalidArgument, match="is not a PEM private key"):
        load_private_key(garbage)
    with pytest.raises(InvalidArgument, match="is not a PEM public key"):
        load_public_key(garbage)
    with pytest.raises(InvalidArgument, match="is a directory"):
        load_private_key(tmp_path)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_priv = tmp_path / "ec.key"
    ec_priv.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ec_pub = tmp_path / "ec.pub"
    ec_pub.write_bytes(
        ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(InvalidArgument, match=r"ec\.key holds a \w+, not an Ed25519 key"):
        load_private_key(ec_priv)
    with pytest.raises(InvalidArgument, match=r"ec\.pub holds a \w+, not an Ed25519 key"):
        load_public_key(ec_pub)
    key_path, pub_path = write_keypair(tmp_path / "ok")
    with pytest.raises(InvalidArgument, match="is not a PEM public key"):
        load_public_key(key_path)
    with pytest.raises(InvalidArgument, match="is not a PEM private key"):
        load_private_key(pub_path)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        generate_private_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
    )
    with pytest.raises(InvalidArgument, match="is encrypted; pacda keys are unencrypted"):
        load_private_key(encrypted)


def test_default_key_path_follows_pacda_home_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PACDA_HOME", str(tmp_path / "ph"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_verifier_key_path() == tmp_path / "ph" / "verifier.key"
    monkeypatch.delenv("PACDA_HOME")
    assert default_verifier_key_path() == tmp_path / "xdg" / "pacda" / "verifier.key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_verifier_key_path() == tmp_path / "home" / ".config" / "pacda" / "verifier.key"


def test_default_key_is_created_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACDA_HOME", str(tmp_path / "home"))
    key, path, created = load_or_create_default_key()
    assert created and path == tmp_path / "home" / "verifier.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "home" / "verifier.pub").exists()
    again, path2, created2 = load_or_create_default_key()
    assert not created2 and path2 == path
    assert key_id(again) == key_id(key)


def test_wire_statements() -> None:
    c = commitment_statement(
        session_id="s", task_digest="sha256:aa", attribution_digest="sha256:bb", mode="committed"
    )
    assert canonical_json(c) == (
        b'{"attribution_digest":"sha256:bb","mode":"committed","session_id":"s",'
        b'"task_digest":"sha256:aa"}'
    )
    r = root_statement(
        session_id="s",
        task_digest="sha256:aa",
        attribution_digest="sha256:bb",
        challenge_seed=b"\x01" * 32,
        merkle_root=b"\xab" * 32,
        n_leaves=10,
    )
    assert canonical_json(r) == (
        b'{"attribution_digest":"sha256:bb","challenge_seed":"' + b"01" * 32 + b'",'
        b'"merkle_root":"' + b"ab" * 32 + b'","n_leaves":10,"session_id":"s",'
        b'"task_digest":"sha256:aa"}'
    )
    with pytest.raises(InvalidArgument, match="merkle_root must be 32 bytes"):
        root_statement(
            session_id="s",
            task_digest="t",
            attribution_digest="a",
            challenge_seed=b"\x01" * 32,
            merkle_root=b"\xab" * 31,
            n_leaves=10,
        )
    with pytest.raises(InvalidArgument, match="n_leaves must be a non-negative integer"):
        root_statement(
            session_id="s",
            task_digest="t",
            attribution_digest="a",
            challenge_seed=b"\x01" * 32,
            merkle_root=b"\xab" * 32,
            n_leaves=-1,
        )
