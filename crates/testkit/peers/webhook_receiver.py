"""A receiver of webhooks and Web Push messages for notify's tests: it checks every Standard
Webhooks signature, VAPID token and push encryption itself.

It listens on 127.0.0.1 on a free port (plain HTTP: the tests run notify with
WEBHOOK_ALLOW_PRIVATE=true) and prints `READY <port>` on standard output once it accepts
connections. Every request is stored in DIR as `req-<n>.json`: method, path, headers (names
lower-cased), the body (base64), the status it was answered with, and what the checks found.

Webhooks, `/hooks/<name>`: when a secret is configured for `<name>`, whether its signature is
valid and why not, checked from the Standard Webhooks specification, not with any library
notify uses: `webhook-signature` holds space-separated `v1,<base64>` values, each the
HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64 secret after
`whsec_`; the timestamp must lie within five minutes of now.

Push, `/push/<name>` (a push service and its browser in one): the receiver makes each
subscription's P-256 key pair and auth secret and writes `DIR/subscriptions.json` ({name:
{endpoint, p256dh, auth}}, base64url) before READY. For each message it checks RFC 8030's
headers (`TTL`, `Urgency`, `Content-Encoding: aes128gcm`), the RFC 8292 VAPID token (ES256
over the token with the key in `k=`, `aud` this origin, `exp` within 24 hours, `sub` mailto:
or https:) with `cryptography`, and decrypts the body with the subscription's private key
(RFC 8291) with `http_ece`, Mozilla's implementation.

Options:
  --dir DIR                 where requests go (required)
  --endpoint NAME[=SECRET]  an endpoint, `/hooks/NAME`, repeatable; with SECRET (`whsec_...`)
                            its signatures are checked
  --push NAME               a push subscription, `/push/NAME`, repeatable
  --reply RULE              answer with a fixed reply, repeatable: NAME|*[:TIMES]=STATUS[;H: V]...
                            TIMES is a number or `always` (default), e.g.
                            `a:2=503;Retry-After: 7` or `*=410`. Other requests get 204.
  --delay SECONDS           wait this long before answering each request

Standard input takes commands, one per line, while the receiver runs (each answered `OK` or
`ERROR <reason>` on standard output):
  reply RULE                add a --reply rule in front of the others
  delay SECONDS             as --delay (0 ends it)

The receiver stops on SIGTERM or when standard input closes (so it never outlives its test).
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import sys
import threading
import time

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

TOLERANCE_SECONDS = 5 * 60


class Rule:
    def __init__(self, text):
        head, _, answer = text.partition("=")
        if not answer:
            raise ValueError(f"a rule is NAME|*[:TIMES]=STATUS[;HEADER: VALUE]...: {text!r}")
        name, _, times = head.partition(":")
        self.name = name
        self.left = None if times in ("", "always") else int(times)
        parts = answer.split(";")
        self.status = int(parts[0])
        self.headers = []
        for header in parts[1:]:
            key, _, value = header.partition(":")
            if not value:
                raise ValueError(f"a header is NAME: VALUE: {header!r}")
            self.headers.append((key.strip(), value.strip()))

    def take(self, name):
        if self.name not in ("*", name) or self.left == 0:
            return False
        if self.left is not None:
            self.left -= 1
        return True


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Subscription:
    """A browser's side of a push subscription: its key pair and auth secret."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def public(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )


def verify_vapid(value, origin):
    """(valid, problem) of an RFC 8292 `Authorization: vapid t=..., k=...` header."""
    if not value.startswith("vapid "):
        return False, f"Authorization is not a vapid one: {value[:20]!r}"
    params = {}
    for part in value[len("vapid "):].split(","):
        name, _, val = part.strip().partition("=")
        params[name] = val
    token, key = params.get("t"), params.get("k")
    if not token or not key:
        return False, "the vapid header lacks t= or k="
    try:
        head, claims_text, signature = token.split(".")
        header = json.loads(b64url_decode(head))
        claims = json.loads(b64url_decode(claims_text))
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
        raw = b64url_decode(signature)
    except (ValueError, json.JSONDecodeError) as e:
        return False, f"the token cannot be read: {e}"
    if header.get("alg") != "ES256" or len(raw) != 64:
        return False, f"the token is not ES256: {header}"
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{claims_text}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False, "the token's signature does not verify with k="
    now = time.time()
    if claims.get("aud") != origin:
        return False, f"aud {claims.get('aud')!r} is not {origin!r}"
    if not (now < claims.get("exp", 0) <= now + 24 * 3600):
        return False, f"exp {claims.get('exp')} is not within 24 hours from now"
    subject = claims.get("sub", "")
    if not (subject.startswith("mailto:") or subject.startswith("https:")):
        return False, f"sub {subject!r} is not a mailto: or https: contact"
    return True, None


def check_push(subscription, headers, body, origin):
    """What a push service and the browser find in one message."""
    problems = []
    if headers.get("content-encoding") != "aes128gcm":
        problems.append(f"Content-Encoding is {headers.get('content-encoding')!r}, not aes128gcm")
    if not (headers.get("ttl") or "").isdigit():
        problems.append(f"TTL {headers.get('ttl')!r} is not a number of seconds")
    if headers.get("urgency") not in ("very-low", "low", "normal", "high"):
        problems.append(f"Urgency {headers.get('urgency')!r} is not an RFC 8030 value")
    vapid_valid, vapid_problem = verify_vapid(headers.get("authorization", ""), origin)
    record = {"vapid_valid": vapid_valid, "vapid_problem": vapid_problem}
    try:
        plaintext = http_ece.decrypt(
            body, private_key=subscription.key, auth_secret=subscription.auth, version="aes128gcm"
        )
        record["decrypted"] = base64.b64encode(plaintext).decode()
    except Exception as e:  # noqa: BLE001 - any failure to decrypt is the finding
        record["decrypted"] = None
        problems.append(f"the body does not decrypt: {e!r}")
    record["push_problem"] = "; ".join(problems) or None
    return record


class State:
    def __init__(self, directory, secrets, rules, delay, subscriptions=None, origin=None):
        self.directory = directory
        self.subscriptions = subscriptions or {}
        self.origin = origin
        self.secrets = secrets
        self.rules = rules
        self.delay = delay
        self.count = 0
        self.lock = threading.Lock()

    def answer_for(self, name):
        with self.lock:
            self.count += 1
            n = self.count
            for rule in self.rules:
                if rule.take(name):
                    return n, rule.status, rule.headers
            return n, 204, []


def verify(secret, headers, body):
    """(valid, reason) for one request, by the Standard Webhooks specification."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        return False, "a webhook-id, webhook-timestamp or webhook-signature header is missing"
    try:
        sent_at = int(stamp)
    except ValueError:
        return False, f"webhook-timestamp {stamp!r} is not an integer"
    if abs(time.time() - sent_at) > TOLERANCE_SECONDS:
        return False, f"webhook-timestamp {sent_at} is more than five minutes from now"
    if not secret.startswith("whsec_"):
        return False, "the configured secret does not start with whsec_"
    key = base64.b64decode(secret[len("whsec_"):])
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True, None
    return False, "no v1 signature matches"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        state = self.state
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        name = None
        for prefix in ("/hooks/", "/push/"):
            if self.path.startswith(prefix):
                name = self.path[len(prefix):].split("?")[0]
        n, status, reply_headers = state.answer_for(name)
        record = {
            "n": n,
            "method": self.command,
            "path": self.path,
            "endpoint": name,
            "headers": headers,
            "body": base64.b64encode(body).decode(),
            "status": status,
            "received_at": time.time(),
        }
        if self.path.startswith("/push/") and name in state.subscriptions:
            record.update(check_push(state.subscriptions[name], headers, body, state.origin))
        if name in state.secrets and state.secrets[name]:
            valid, reason = verify(state.secrets[name], headers, body)
            record["signature_valid"] = valid
            record["signature_problem"] = reason
        else:
            record["signature_valid"] = None
        if state.delay:
            time.sleep(state.delay)
        path = os.path.join(state.directory, f"req-{n:06d}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.replace(path + ".tmp", path)
        answer = b"" if status in (204, 304) else f"status {status}\n".encode()
        self.send_response(status)
        for key, value in reply_headers:
            self.send_header(key, value)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--endpoint", action="append", default=[])
    parser.add_argument("--reply", action="append", default=[])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--push", action="append", default=[])
    args = parser.parse_args()
    secrets = {}
    for endpoint in args.endpoint:
        name, _, secret = endpoint.partition("=")
        secrets[name] = secret or None
    subscriptions = {name: Subscription() for name in args.push}
    state = State(args.dir, secrets, [Rule(r) for r in args.reply], args.delay, subscriptions)
    Handler.state = state
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    state.origin = f"http://127.0.0.1:{port}"
    listing = {
        name: {
            "endpoint": f"{state.origin}/push/{name}",
            "p256dh": b64url(sub.public()),
            "auth": b64url(sub.auth),
        }
        for name, sub in subscriptions.items()
    }
    with open(os.path.join(args.dir, "subscriptions.json"), "w") as f:
        json.dump(listing, f)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {port}", flush=True)
    for line in sys.stdin:
        command, _, rest = line.strip().partition(" ")
        try:
            if command == "reply":
                rule = Rule(rest)
                with state.lock:
                    state.rules.insert(0, rule)
            elif command == "delay":
                state.delay = float(rest)
            else:
                raise ValueError(f"unknown command {command!r}")
            print("OK", flush=True)
        except ValueError as e:
            print(f"ERROR {e}", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
