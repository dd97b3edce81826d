"""A webhook receiver for notify's tests: it checks every Standard Webhooks signature itself.

It listens on 127.0.0.1 on a free port (plain HTTP: the tests run notify with
WEBHOOK_ALLOW_PRIVATE=true) and prints `READY <port>` on standard output once it accepts
connections. Every request to `/hooks/<name>` is stored in DIR as `req-<n>.json`: method, path,
headers (names lower-cased), the body (base64), the status it was answered with, and, when a
secret is configured for `<name>`, whether its signature is valid and why not.

The signature is checked here, from the Standard Webhooks specification, not with any library
notify uses: `webhook-signature` holds space-separated `v1,<base64>` values, each the
HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64 secret after
`whsec_`; the timestamp must lie within five minutes of now.

Options:
  --dir DIR                 where requests go (required)
  --endpoint NAME[=SECRET]  an endpoint, `/hooks/NAME`, repeatable; with SECRET (`whsec_...`)
                            its signatures are checked
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


class State:
    def __init__(self, directory, secrets, rules, delay):
        self.directory = directory
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
        prefix = "/hooks/"
        name = self.path[len(prefix):].split("?")[0] if self.path.startswith(prefix) else None
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
    args = parser.parse_args()
    secrets = {}
    for endpoint in args.endpoint:
        name, _, secret = endpoint.partition("=")
        secrets[name] = secret or None
    state = State(args.dir, secrets, [Rule(r) for r in args.reply], args.delay)
    Handler.state = state
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
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
