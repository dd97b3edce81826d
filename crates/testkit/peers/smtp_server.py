"""A small, controllable SMTP server for notify's tests (aiosmtpd).

It listens on 127.0.0.1 on a free port and prints `READY <port>` on standard output once it
accepts connections. Every accepted message is stored in DIR as `msg-<n>.eml` (the bytes as
received) with `msg-<n>.json` beside it (envelope sender, recipients, whether the session was
encrypted, who logged in, when its transaction began (`mail_at`, Unix seconds) and whether the
`250` reached a connection still open (`answered`: false when the client was gone, so it never
learnt the message was delivered). `DIR/stats.json` counts sessions: total, open now, most at once.

Options:
  --dir DIR                 where messages and stats go (required)
  --starttls CERT KEY       offer STARTTLS with this certificate and require it before MAIL
  --implicit-tls CERT KEY   TLS from the first byte (smtps)
  --auth USER:PASSWORD      require AUTH (PLAIN or LOGIN) with these credentials
  --reply RULE              answer a phase with a fixed reply, repeatable:
                            PHASE[:ADDRESS|*][:TIMES]=CODE TEXT
                            PHASE is mail, rcpt or data; TIMES is a number or `always`
                            (default), e.g. `rcpt:*:1=451 4.3.0 Try again later` or
                            `rcpt:gone@example.test=550 5.1.1 Mailbox unavailable`
  --data-delay SECONDS      wait this long before answering the end of DATA

Standard input takes commands, one per line, while the server runs (each answered `OK` or
`ERROR <reason>` on standard output):
  reply RULE                add a --reply rule in front of the others, e.g. a burst of
                            `reply rcpt:*:200=451 4.3.0 Try again later`
  accept-delay SECONDS      store each message, then wait this long before answering `250`
                            (0 ends it): sends are in flight, and a client that dies in the
                            wait has had its message delivered without knowing it
A 421 reply closes the connection after it is sent, as a server shutting down does: the session
takes no further transaction (every later command of it is answered 421 too).
`stats.json` also counts `rejected`: the replies given by rules.

The server stops on SIGTERM or when standard input closes (so it never outlives its test).
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Stats:
    def __init__(self, directory):
        self.path = os.path.join(directory, "stats.json")
        self.total = 0
        self.open = 0
        self.max_open = 0
        self.auth_failures = 0
        self.rejected = 0
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(
                {
                    "sessions": self.total,
                    "open": self.open,
                    "max_open": self.max_open,
                    "auth_failures": self.auth_failures,
                    "rejected": self.rejected,
                },
                f,
            )
        os.replace(tmp, self.path)


class Rule:
    def __init__(self, spec):
        head, sep, reply = spec.partition("=")
        if not sep:
            raise ValueError(f"--reply {spec!r}: expected PHASE[:ADDRESS][:TIMES]=CODE TEXT")
        parts = head.split(":")
        self.phase = parts[0].lower()
        if self.phase not in ("mail", "rcpt", "data"):
            raise ValueError(f"--reply {spec!r}: phase must be mail, rcpt or data")
        self.address = parts[1].lower() if len(parts) > 1 and parts[1] not in ("", "*") else None
        times = parts[2] if len(parts) > 2 else "always"
        self.remaining = None if times == "always" else int(times)
        self.reply = reply.strip()
        if len(self.reply) < 3 or not self.reply[:3].isdigit():
            raise ValueError(f"--reply {spec!r}: the reply must start with a three-digit code")

    def applies(self, phase, address):
        if phase != self.phase or self.remaining == 0:
            return False
        if self.address is not None and (address or "").lower() != self.address:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


class Handler:
    def __init__(self, directory, rules, data_delay, stats):
        self.directory = directory
        self.rules = rules
        self.data_delay = data_delay
        self.stats = stats
        self.accept_delay = 0.0
        self.count = 0

    def rule_reply(self, server, session, phase, address):
        if getattr(session, "shut_down", None):
            return session.shut_down
        for rule in self.rules:
            if rule.applies(phase, address):
                self.stats.rejected += 1
                self.stats.save()
                if rule.reply.startswith("421") and server.transport is not None:
                    # The reply is written first (push), then the connection goes; until it
                    # is gone nothing more is taken on it.
                    session.shut_down = rule.reply
                    asyncio.get_running_loop().call_later(0.05, server.transport.close)
                return rule.reply
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.rule_reply(server, session, "mail", address)
        if reply:
            return reply
        envelope.mail_at = time.time()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rule_reply(server, session, "rcpt", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        reply = self.rule_reply(
            server, session, "data", envelope.rcpt_tos[0] if envelope.rcpt_tos else None
        )
        if reply:
            return reply
        self.count += 1
        name = f"msg-{self.count:04d}"
        transport = server.transport
        tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        auth_user = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": tls,
            "auth_user": auth_user,
            "mail_at": getattr(envelope, "mail_at", None),
            "answered": None,
        }
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        # The message first, then its metadata: a reader that sees the .json sees both.
        self.store(name + ".eml", content)
        self.store(name + ".json", json.dumps(meta).encode())
        try:
            if self.accept_delay:
                await asyncio.sleep(self.accept_delay)
        except asyncio.CancelledError:
            # The session ended while the answer waited (aiosmtpd cancels its handler).
            meta["answered"] = False
            self.store(name + ".json", json.dumps(meta).encode())
            raise
        # Whether the client is still there to hear the `250`; one that is not may send the
        # message again, not knowing it was delivered.
        transport = server.transport
        meta["answered"] = transport is not None and not transport.is_closing()
        self.store(name + ".json", json.dumps(meta).encode())
        return f"250 2.0.0 OK queued as {name}"

    def store(self, file_name, data):
        path = os.path.join(self.directory, file_name)
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)


def tls_context(cert, key):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def main():
    # Quiet: aiosmtpd logs a warning for its own deprecated login_data on every AUTH and a
    # traceback for every failed TLS handshake, which the tests cause on purpose.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--starttls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--implicit-tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth", metavar="USER:PASSWORD")
    parser.add_argument("--reply", action="append", default=[])
    parser.add_argument("--data-delay", type=float, default=0.0)
    args = parser.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    stats = Stats(args.dir)
    handler = Handler(args.dir, [Rule(r) for r in args.reply], args.data_delay, stats)

    credentials = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        credentials = (user.encode(), password.encode())

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and (auth_data.login, auth_data.password) == credentials
        )
        if not ok:
            stats.auth_failures += 1
            stats.save()
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    starttls = tls_context(*args.starttls) if args.starttls else None
    implicit = tls_context(*args.implicit_tls) if args.implicit_tls else None

    class CountingSMTP(SMTP):
        counted = False

        def connection_made(self, transport):
            upgrade = self._original_transport is not None
            super().connection_made(transport)
            if not upgrade and not self.counted:
                self.counted = True
                stats.total += 1
                stats.open += 1
                stats.max_open = max(stats.max_open, stats.open)
                stats.save()

        def connection_lost(self, error):
            if self.counted:
                self.counted = False
                stats.open -= 1
                stats.save()
            super().connection_lost(error)

    def factory():
        return CountingSMTP(
            handler,
            hostname="smtp.test",
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=starttls,
            require_starttls=starttls is not None,
            auth_required=credentials is not None,
            # With implicit TLS the whole connection is encrypted, but aiosmtpd only knows
            # about STARTTLS: it would not offer AUTH at all if told to require TLS.
            auth_require_tls=starttls is not None,
            authenticator=authenticator if credentials is not None else None,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=implicit)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def command(line):
        verb, _, rest = line.strip().partition(" ")
        try:
            if verb == "reply":
                handler.rules.insert(0, Rule(rest))
            elif verb == "accept-delay":
                handler.accept_delay = float(rest)
            else:
                raise ValueError(f"unknown command {verb!r} (expected: reply RULE, accept-delay SECONDS)")
            print("OK", flush=True)
        except ValueError as e:
            print(f"ERROR {e}", flush=True)

    def read_commands():
        for line in sys.stdin:
            if line.strip():
                loop.call_soon_threadsafe(command, line)
        # Standard input closing means the test process is gone.
        loop.call_soon_threadsafe(stop.set)

    loop.run_in_executor(None, read_commands)
    await stop.wait()
    server.close()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
