"""socketlet.sign / verify / verify_request: the hook signatures socketlet's Rust side makes."""

import pytest

import socketlet

SECRET = b"secret"
BODY = b'{"a":1}'
# Computed by the Rust side: socketlet_gateway::sign(b"secret", 1700000000, br#"{"a":1}"#)
# (crates/gateway/src/client.rs, test signatures_are_hmac_sha256_of_the_timestamp_and_the_body).
RUST_VECTOR = "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
TS = 1700000000


def test_sign_matches_the_rust_side():
    assert socketlet.sign(SECRET, TS, BODY) == RUST_VECTOR
    # The same with text arguments, and the timestamp as the header's text.
    assert socketlet.sign("secret", "1700000000", '{"a":1}') == RUST_VECTOR


def test_verify_accepts_the_rust_vector_within_the_window():
    assert socketlet.verify(SECRET, "1700000000", BODY, RUST_VECTOR, now=TS)
    assert socketlet.verify("secret", TS, BODY, RUST_VECTOR, now=TS + 299)
    assert socketlet.verify(SECRET, TS, BODY, RUST_VECTOR.upper(), now=TS)
    assert socketlet.verify(SECRET, TS, BODY, RUST_VECTOR.encode(), now=TS)


def test_verify_refuses_stale_and_future_timestamps():
    # Replays: a request signed more than max_age seconds ago, or that far in the future.
    assert not socketlet.verify(SECRET, TS, BODY, RUST_VECTOR, now=TS + 301)
    assert not socketlet.verify(SECRET, TS, BODY, RUST_VECTOR, now=TS - 301)
    assert socketlet.verify(SECRET, TS, BODY, RUST_VECTOR, max_age=3600, now=TS + 3000)
    assert not socketlet.verify(SECRET, TS, BODY, RUST_VECTOR, max_age=10, now=TS + 11)
    # max_age=None: no time check at all (the real clock is years past TS).
    assert socketlet.verify(SECRET, TS, BODY, RUST_VECTOR, max_age=None)
    assert not socketlet.verify(SECRET, TS, BODY, RUST_VECTOR)


@pytest.mark.parametrize(
    "secret, timestamp, body, signature",
    [
        (b"other", TS, BODY, RUST_VECTOR),  # another secret
        (SECRET, TS + 1, BODY, RUST_VECTOR),  # another timestamp
        (SECRET, TS, b'{"a":2}', RUST_VECTOR),  # another body
        (SECRET, TS, BODY + b" ", RUST_VECTOR),  # the body re-serialised
        (SECRET, TS, BODY, RUST_VECTOR[:-1]),  # truncated
        (SECRET, TS, BODY, RUST_VECTOR[:-1] + "7"),  # one digit off
        (SECRET, TS, BODY, ""),
        (SECRET, TS, BODY, None),  # header missing
        (SECRET, None, BODY, RUST_VECTOR),  # header missing
        (SECRET, "", BODY, RUST_VECTOR),
        (SECRET, " 1700000000", BODY, RUST_VECTOR),
        (SECRET, "+1700000000", BODY, RUST_VECTOR),
        (SECRET, "1700000000.0", BODY, RUST_VECTOR),
        (SECRET, "１７００００００００", BODY, RUST_VECTOR),  # full-width digits
        (SECRET, "9" * 400, BODY, RUST_VECTOR),
        (SECRET, -1, BODY, RUST_VECTOR),
        (SECRET, True, BODY, RUST_VECTOR),
        (SECRET, TS, BODY, "é" * 64),  # not ASCII
        (SECRET, TS, BODY, b"\xff" * 64),
    ],
)
def test_verify_refuses_anything_else(secret, timestamp, body, signature):
    assert not socketlet.verify(secret, timestamp, body, signature, now=TS)


def test_an_empty_secret_is_a_mistake():
    with pytest.raises(ValueError):
        socketlet.verify("", TS, BODY, RUST_VECTOR, now=TS)
    with pytest.raises(ValueError):
        socketlet.sign(SECRET, "not a number", BODY)


def test_verify_request_reads_the_headers_whatever_their_case():
    sig = socketlet.sign(SECRET, TS, BODY)
    for headers in (
        {"X-Socketlet-Timestamp": str(TS), "X-Socketlet-Signature": sig},
        {"x-socketlet-timestamp": str(TS), "x-socketlet-signature": sig},
        {"X-SOCKETLET-TIMESTAMP": str(TS), "X-SOCKETLET-SIGNATURE": sig},
        [(b"x-socketlet-timestamp", str(TS).encode()), (b"x-socketlet-signature", sig.encode())],
    ):
        assert socketlet.verify_request(SECRET, headers, BODY, now=TS), headers
    assert not socketlet.verify_request(SECRET, {"X-Socketlet-Signature": sig}, BODY, now=TS)
    assert not socketlet.verify_request(SECRET, {}, BODY, now=TS)
    assert not socketlet.verify_request(SECRET, None, BODY, now=TS)
