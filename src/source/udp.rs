//! `--udp`: log lines arriving as datagrams (uWSGI's UDP logger, syslog over UDP).
//!
//! Role: [`Udp`] receives what is queued on its socket into its input's pipeline; [`resolve`]
//! turns the option's `HOST:PORT` into an address (also used by `--watch-socket`).
//! Invariants: a datagram is whole lines — one without a final newline gets one, so datagrams of
//! different senders never join into one line; a receive error is reported and the socket is
//! read again when the poll says so.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::report::report;

/// Why an address option was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AddrError {
    #[error("`{0}` is not HOST:PORT, [IPv6]:PORT or a unix socket path: {1}")]
    Syntax(String, io::Error),
    #[error("`{0}` resolves to no address")]
    NoAddress(String),
}

/// Resolve `host:port` / `[v6]:port` / `:port` (all addresses) to one socket address.
pub(crate) fn resolve(s: &str) -> Result<SocketAddr, AddrError> {
    resolve_with(s, "0.0.0.0")
}

/// The address `--udp` binds: `:port` is loopback only (a datagram from anywhere could raise
/// an alarm, and a `cmd:` alarm runs a command); `0.0.0.0:port` says "every address" in so
/// many words.
pub(crate) fn bind_address(s: &str) -> Result<SocketAddr, AddrError> {
    resolve_with(s, "127.0.0.1")
}

fn resolve_with(s: &str, no_host: &str) -> Result<SocketAddr, AddrError> {
    let full = if s.starts_with(':') {
        format!("{no_host}{s}")
    } else {
        s.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| AddrError::Syntax(s.to_string(), e))?
        .next()
        .ok_or_else(|| AddrError::NoAddress(s.to_string()))
}

/// A bound `--udp` socket and the room for one datagram.
#[derive(Debug)]
pub(crate) struct Udp {
    pub(crate) sock: mio::net::UdpSocket,
    scratch: Vec<u8>,
}

impl Udp {
    pub(crate) fn new(sock: mio::net::UdpSocket) -> Udp {
        Udp {
            sock,
            scratch: vec![0u8; 65536],
        }
    }

    /// Receive one datagram into `pipeline`.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline<'_>,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        let n = match self.sock.recv(&mut self.scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Idle),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Step::More),
            Err(e) => {
                report!(Alarm, "udp: {e}");
                return Ok(Step::Idle);
            }
        };
        let mut res = pipeline.feed(&self.scratch[..n], sink);
        if res.is_ok() && self.scratch[..n].last() != Some(&b'\n') {
            res = pipeline.feed(b"\n", sink);
        }
        sink.flush();
        res.map(|()| Step::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_alone_means_every_address() {
        assert_eq!(resolve(":9000").unwrap(), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            bind_address(":9000").unwrap(),
            "127.0.0.1:9000".parse().unwrap()
        );
        assert_eq!(
            bind_address("0.0.0.0:9000").unwrap(),
            "0.0.0.0:9000".parse().unwrap()
        );
        assert!(resolve("nonsense").is_err());
    }
}
