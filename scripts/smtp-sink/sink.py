"""An SMTP server that really speaks SMTP (aiosmtpd) and keeps what it is
sent: each message is appended to --out as one JSON line (envelope sender,
recipients, Subject, Message-ID, text body), so a test reads what a mail
server would have delivered. With --user/--password it requires AUTH
(PLAIN or LOGIN; allowed without TLS, as on a local relay).

    python sink.py --port 2525 --out mails.jsonl [--user u --password p]
"""

import argparse
import asyncio
import email
import email.policy
import json
import signal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": message["Subject"],
            "message_id": message["Message-ID"],
            "body": body.get_content() if body is not None else "",
            "authenticated": session.authenticated,
        }
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    kwargs = {}
    if a.user:
        def check(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == a.user \
                and auth_data.password.decode() == a.password
            return AuthResult(success=ok)
        kwargs = {"authenticator": check, "auth_required": True, "auth_require_tls": False}

    controller = Controller(Keep(a.out), hostname="127.0.0.1", port=a.port, **kwargs)
    controller.start()
    print(f"listening on {a.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
