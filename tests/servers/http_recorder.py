#!/usr/bin/env python3
"""An HTTP/HTTPS request recorder for logalarm's integration tests.

Prints its port on the first line of stdout, then appends one JSON object per request to
--records: method, path, headers (lower-case names), decoded basic auth, body (latin-1, so
every byte survives), the status it answered. --statuses gives the answers in order (the last
one repeats); --delay makes it hang before answering (timeout tests); --port picks the port
(an endpoint that comes back where it was).
"""
import argparse, base64, http.server, json, ssl, sys, threading, time

p = argparse.ArgumentParser()
p.add_argument("--records", required=True)
p.add_argument("--cert")
p.add_argument("--key")
p.add_argument("--statuses", default="200")
p.add_argument("--delay", type=float, default=0.0)
p.add_argument("--port", type=int, default=0, help="listen on this port (0: any free one)")
p.add_argument("--tagged", action="store_true",
               help="write conformance records instead: PATH-without-slash TAB METHOD SPACE body RS LF")
a = p.parse_args()
statuses = [int(s) for s in a.statuses.split(",")]
lock = threading.Lock()
count = [0]


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n)

    def handle_any(self):
        body = self.body()
        auth = None
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            auth = base64.b64decode(h[6:]).decode("latin-1")
        with lock:
            i = count[0]
            count[0] += 1
            status = statuses[min(i, len(statuses) - 1)]
            rec = {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "auth": auth,
                "body": body.decode("latin-1"),
                "status": status,
                "tls": isinstance(self.connection, ssl.SSLSocket),
            }
            if a.tagged:
                with open(a.records, "ab") as f:
                    f.write(self.path[1:].encode() + b"\t" + self.command.encode() + b" " + body + b"\x1e\n")
            else:
                with open(a.records, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        if a.delay:
            time.sleep(a.delay)
        answer = b"recorded\n" if status < 400 else b"failing on purpose\n"
        try:
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


http.server.ThreadingHTTPServer.allow_reuse_address = True
srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), H)
srv.daemon_threads = True
if a.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
