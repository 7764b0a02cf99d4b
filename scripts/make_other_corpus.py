#!/usr/bin/env python3
"""make_other_corpus.py SIZE_MB OUT: a deterministic log corpus that is *not* loghub.

The literal search's rarity model (src/data/rarity.bin) is made from the loghub samples that
scripts/make_corpus.sh builds the benchmark corpus from; this corpus checks choices against
text the model never saw. Every line is generated here (no data files), from a fixed seed:
nginx access lines (combined format, ~45 %), a syslog stream in RFC 3339 time (sshd, sudo,
CRON, postfix, kernel, systemd: ~35 %), Java stack traces (~10 %) and Python tracebacks
(~10 %), interleaved the way a collector merges them.
"""
import random
import sys

if len(sys.argv) != 3:
    sys.exit("usage: make_other_corpus.py SIZE_MB OUT")
target = int(float(sys.argv[1]) * 1048576)
out = sys.argv[2]
rnd = random.Random(20261203)

HOSTS = ["web-%02d" % i for i in range(1, 13)] + ["db-1", "db-2", "mail", "bastion"]
USERS = ["root", "admin", "deploy", "ubuntu", "git", "postgres", "oracle", "test", "guest",
         "jenkins", "www-data", "alice", "bob", "carol"]
PATHS = ["/", "/index.html", "/api/v1/orders", "/api/v1/orders/%d", "/api/v2/users/%d/cart",
         "/static/js/app.%x.js", "/static/css/site.%x.css", "/login", "/logout", "/healthz",
         "/metrics", "/wp-login.php", "/.env", "/search?q=%s", "/images/%d.jpg", "/favicon.ico"]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "curl/8.4.0", "python-requests/2.31.0", "Go-http-client/1.1", "kube-probe/1.28",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
WORDS = ["alpha", "beta", "cart", "order", "shoe", "red", "blue", "sale", "gift", "book"]
JAVA = ["com.example.shop.OrderService", "com.example.shop.CartController",
        "org.springframework.web.servlet.DispatcherServlet", "org.hibernate.internal.SessionImpl",
        "java.util.concurrent.ThreadPoolExecutor", "io.netty.channel.AbstractChannelHandlerContext"]
EXC = ["java.lang.NullPointerException", "java.sql.SQLTransientConnectionException: HikariPool-1 - "
       "Connection is not available, request timed out after 30000ms.",
       "java.lang.IllegalStateException: cart is empty", "java.net.SocketTimeoutException: Read timed out"]
PY = [("app/views.py", "checkout"), ("app/models.py", "save"), ("lib/db.py", "execute"),
      ("site-packages/requests/adapters.py", "send")]
PYEXC = ["KeyError: 'user_id'", "TimeoutError: timed out", "ValueError: invalid literal for int() "
         "with base 10: 'abc'", "psycopg2.OperationalError: server closed the connection unexpectedly"]

t = 1764547200.0  # 2025-12-01T00:00:00Z


def ip():
    return "%d.%d.%d.%d" % (rnd.randint(1, 223), rnd.randint(0, 255), rnd.randint(0, 255),
                            rnd.randint(1, 254))


def stamp_rfc3339():
    s = int(t)
    frac = int((t - s) * 1e6)
    import time as _t
    return _t.strftime("%Y-%m-%dT%H:%M:%S", _t.gmtime(s)) + ".%06d+00:00" % frac


def stamp_clf():
    import time as _t
    return _t.strftime("%d/%b/%Y:%H:%M:%S +0000", _t.gmtime(int(t)))


def access():
    p = rnd.choice(PATHS)
    if "%d" in p:
        p = p % rnd.randint(1, 99999)
    elif "%x" in p:
        p = p % rnd.getrandbits(32)
    elif "%s" in p:
        p = p % rnd.choice(WORDS)
    status = rnd.choices([200, 301, 304, 404, 500, 502, 503], [80, 3, 6, 7, 2, 1, 1])[0]
    method = rnd.choices(["GET", "POST", "PUT", "DELETE", "HEAD"], [80, 12, 3, 1, 4])[0]
    return '%s - - [%s] "%s %s HTTP/1.1" %d %d "-" "%s"\n' % (
        ip(), stamp_clf(), method, p, status, rnd.randint(0, 90000), rnd.choice(AGENTS))


def syslog():
    h = rnd.choice(HOSTS)
    pid = rnd.randint(300, 65000)
    k = rnd.randint(0, 11)
    if k < 3:
        u = rnd.choice(USERS)
        msg = rnd.choice([
            "sshd[%d]: Failed password for %s from %s port %d ssh2" % (pid, u, ip(), rnd.randint(1024, 65535)),
            "sshd[%d]: Invalid user %s from %s port %d" % (pid, u, ip(), rnd.randint(1024, 65535)),
            "sshd[%d]: Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%016x" % (
                pid, u, ip(), rnd.randint(1024, 65535), rnd.getrandbits(64)),
            "sshd[%d]: pam_unix(sshd:session): session opened for user %s(uid=%d) by (uid=0)" % (
                pid, u, rnd.randint(0, 2000)),
            "sshd[%d]: Disconnected from authenticating user %s %s port %d [preauth]" % (
                pid, u, ip(), rnd.randint(1024, 65535)),
        ])
    elif k < 5:
        msg = "CRON[%d]: (%s) CMD (%s)" % (pid, rnd.choice(USERS), rnd.choice([
            "/usr/lib/php/sessionclean", "test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily",
            "/opt/backup/run.sh --incremental"]))
    elif k < 7:
        msg = "postfix/smtpd[%d]: connect from unknown[%s]" % (pid, ip()) if rnd.random() < 0.5 else \
            "postfix/qmgr[%d]: %010X: from=<%s@example.org>, size=%d, nrcpt=1 (queue active)" % (
                pid, rnd.getrandbits(40), rnd.choice(USERS), rnd.randint(500, 90000))
    elif k < 8:
        msg = "sudo[%d]: %s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl restart %s" % (
            pid, rnd.choice(USERS), rnd.randint(0, 9), rnd.choice(USERS), rnd.choice(["nginx", "app", "redis"]))
    elif k < 10:
        msg = "kernel: [%d.%06d] %s" % (rnd.randint(1, 900000), rnd.randint(0, 999999), rnd.choice([
            "TCP: request_sock_TCP: Possible SYN flooding on port 443. Sending cookies.",
            "EXT4-fs (nvme0n1p2): mounted filesystem with ordered data mode. Quota mode: none.",
            "nf_conntrack: nf_conntrack: table full, dropping packet",
            "Out of memory: Killed process %d (java) total-vm:%dkB" % (pid, rnd.randint(10**6, 10**7))]))
    else:
        msg = "systemd[1]: %s" % rnd.choice([
            "Started Session %d of User %s." % (rnd.randint(1, 9999), rnd.choice(USERS)),
            "app.service: Main process exited, code=exited, status=1/FAILURE",
            "Reloading.", "Starting Daily apt upgrade and clean activities..."])
    return "%s %s %s\n" % (stamp_rfc3339(), h, msg)


def java():
    lines = ["%s ERROR [http-nio-8080-exec-%d] %s - Request failed\n" % (
        stamp_rfc3339(), rnd.randint(1, 200), rnd.choice(JAVA)), rnd.choice(EXC) + "\n"]
    for _ in range(rnd.randint(3, 12)):
        c = rnd.choice(JAVA)
        lines.append("\tat %s.%s(%s.java:%d)\n" % (c, rnd.choice(["handle", "invoke", "run", "doFilter"]),
                                                   c.rsplit(".", 1)[1], rnd.randint(20, 900)))
    return "".join(lines)


def python():
    lines = ["Traceback (most recent call last):\n"]
    for f, fn in rnd.sample(PY, rnd.randint(2, 4)):
        lines.append('  File "/srv/%s", line %d, in %s\n' % (f, rnd.randint(5, 600), fn))
        lines.append("    result = %s(%s)\n" % (fn, rnd.choice(["request", "row", "payload", "self.conn"])))
    lines.append(rnd.choice(PYEXC) + "\n")
    return "".join(lines)


written = 0
with open(out, "w", buffering=1 << 20) as fh:
    while written < target:
        r = rnd.random()
        s = access() if r < 0.45 else syslog() if r < 0.80 else java() if r < 0.90 else python()
        fh.write(s)
        written += len(s)
        t += rnd.random() * 0.01
