//! `--udp`: log lines arriving as datagrams (uWSGI's UDP logger, syslog over UDP).
//!
//! Role: [`Udp`] receives what is queued on its socket into its input's pipeline; [`resolve`]
//! turns the option's `HOST:PORT` into an address (also used by `--watch-socket`).
//! Invariants: a datagram is whole lines — one without a final newline gets one, so datagrams of
//! different senders never join into one line; a receive error is reported and the socket is
//! read again when the poll says so. Who may send is decided by the bind address (`:PORT` is
//! loopback) and `--udp-allow` (networks; a datagram from elsewhere is dropped before it is
//! read as a line, counted and reported); datagrams the kernel dropped for want of buffer room
//! are counted (`SO_RXQ_OVFL`) and reported, at most once a second each.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::Step;
use crate::dispatch::LogSink;
use crate::pipeline::Pipeline;
use crate::report::{report, DropCount};

/// A network of `--udp-allow`: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `10.0.0.0/8`, `::1`, `192.168.1.7` (a single address).
    pub(crate) fn parse(s: &str) -> Result<Net, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("`{s}` is not an address or ADDRESS/PREFIX"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Net { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
                IpAddr::V6(v) => u128::from(v),
            }
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        let mask = if self.prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix))
        };
        bits(ip) & mask == bits(self.addr) & mask
    }
}

/// Who may send, and what a line shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Empty: every sender the bind address lets in.
    pub(crate) allow: Vec<Net>,
    /// Prefix each line with `[SENDER] `.
    pub(crate) sender: bool,
}

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
    options: Options,
    /// `--udp-sender`: the datagram's lines, each behind its sender.
    prefixed: Vec<u8>,
    refused: DropCount,
    /// The kernel's drop count as last seen, and what was reported of it.
    kernel: u32,
    overflow: DropCount,
}

impl Udp {
    pub(crate) fn new(sock: mio::net::UdpSocket, options: Options) -> Udp {
        if let Err(e) = crate::sys::count_drops(sock.as_raw_fd()) {
            report!(Alarm, "udp: the kernel's drops will not be counted: {e}");
        }
        Udp {
            sock,
            scratch: vec![0u8; 65536],
            options,
            prefixed: Vec::new(),
            refused: DropCount::default(),
            kernel: 0,
            overflow: DropCount::default(),
        }
    }

    fn shown(&self) -> String {
        self.sock
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// Count and report (once a second) the kernel's drops and refused senders.
    fn account(&mut self, kernel: Option<u32>, refused: bool) {
        let now = Instant::now();
        if let Some(k) = kernel {
            let new = k.wrapping_sub(self.kernel);
            self.kernel = k;
            self.overflow.add(u64::from(new));
        }
        if refused {
            self.refused.add(1);
        }
        if let Some((new, total)) = self.overflow.due(now, false) {
            let at = self.shown();
            report!(
                Alarm,
                "udp {at}: the kernel dropped {new} datagram(s), its receive buffer full ({total} in all)"
            );
        }
        if let Some((new, total)) = self.refused.due(now, false) {
            let at = self.shown();
            report!(
                Alarm,
                "udp {at}: {new} datagram(s) from senders outside --udp-allow dropped ({total} in all)"
            );
        }
    }

    /// Receive one datagram into `pipeline`.
    pub(crate) fn serve(
        &mut self,
        pipeline: &mut Pipeline,
        sink: &mut LogSink<'_>,
    ) -> io::Result<Step> {
        let (n, from, kernel) =
            match crate::sys::recv_from(self.sock.as_raw_fd(), &mut self.scratch) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Idle),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Step::More),
                Err(e) => {
                    report!(Alarm, "udp: {e}");
                    return Ok(Step::Idle);
                }
            };
        let allowed = self.options.allow.is_empty()
            || from.is_some_and(|f| self.options.allow.iter().any(|n| n.contains(f.ip())));
        self.account(kernel, !allowed);
        if !allowed {
            return Ok(Step::More);
        }
        let mut data = &self.scratch[..n];
        if self.options.sender {
            let tag = from.map_or_else(|| "[?] ".to_string(), |f| format!("[{f}] "));
            self.prefixed.clear();
            for line in data.split_inclusive(|&b| b == b'\n') {
                self.prefixed.extend_from_slice(tag.as_bytes());
                self.prefixed.extend_from_slice(line);
            }
            data = &self.prefixed;
        }
        let mut res = pipeline.feed(data, sink);
        if res.is_ok() && data.last() != Some(&b'\n') {
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

    #[test]
    fn networks() {
        let n = Net::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!n.contains("::1".parse().unwrap()));
        let one = Net::parse("::1").unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!(Net::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(Net::parse("nonsense").is_err());
    }
}
