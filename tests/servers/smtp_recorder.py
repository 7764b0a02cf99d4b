#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on four loopback ports for logalarm's integration tests.

plain: no AUTH, no TLS. auth: AUTH required (user/password from --user/--password).
starttls: STARTTLS required, then AUTH allowed. smtps: implicit TLS, AUTH allowed.
Prints {"plain": P, "auth": P, "starttls": P, "smtps": P} on stdout, then appends one JSON
object per mail to --records: the port kind, MAIL FROM, RCPT TOs, the authenticated user,
whether the session was TLS, and the raw DATA (latin-1). --tempfail N answers the first N
DATA commands with 451 (a transient failure the client must retry).
"""
import argparse, json, logging, socket, ssl, sys, threading, time, warnings

logging.disable(logging.CRITICAL)
warnings.simplefilter("ignore")  # "AUTH without TLS" is what the auth port tests on purpose

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--records", required=True)
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
p.add_argument("--user", default="alarm,alarm@example.com", help="accepted logins, comma-separated")
p.add_argument("--password", default="alarmpw")
p.add_argument("--tempfail", type=int, default=0)
a = p.parse_args()
lock = threading.Lock()
tempfail = [a.tempfail]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword):
        if auth_data.login.decode() in a.user.split(",") and auth_data.password.decode() == a.password:
            return AuthResult(success=True, handled=False, auth_data=auth_data.login.decode())
    return AuthResult(success=False, handled=False)


class Recorder:
    def __init__(self, kind):
        self.kind = kind

    async def handle_DATA(self, server, session, envelope):
        with lock:
            if tempfail[0] > 0:
                tempfail[0] -= 1
                return "451 4.3.0 temporary failure, try again later"
            rec = {
                "port": self.kind,
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_user": session.auth_data if isinstance(session.auth_data, str) else None,
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "data": envelope.original_content.decode("latin-1"),
            }
            with open(a.records, "a") as f:
                f.write(json.dumps(rec) + "\n")
        return "250 OK"


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(a.cert, a.key)
ports = {}
controllers = []
for kind, kw in [
    ("plain", {}),
    ("auth", dict(auth_required=True, auth_require_tls=False, authenticator=authenticator)),
    ("starttls", dict(tls_context=ctx, require_starttls=True, authenticator=authenticator)),
    ("smtps", dict(ssl_context=ctx, auth_require_tls=False, authenticator=authenticator)),
]:
    for attempt in range(20):
        port = free_port()
        c = Controller(Recorder(kind), hostname="127.0.0.1", port=port, **kw)
        try:
            c.start()
            break
        except Exception:
            time.sleep(0.05)
    else:
        sys.exit(f"could not start the {kind} port")
    ports[kind] = port
    controllers.append(c)
print(json.dumps(ports), flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
