//! Every libc call and every `unsafe` block of logalarm lives here.
//!
//! Role: thin, checked wrappers over the few POSIX calls std does not expose (non-blocking flags,
//! `fstat` file type, `ctime`-style local dates, `kill`). Invariant: every `unsafe` block carries
//! a `// SAFETY:` comment and every wrapper returns `io::Result` built from `errno`.
//! Rejected alternative: `nix` — a large dependency for a handful of calls.

use std::io;
use std::os::fd::RawFd;

/// Run a libc call and turn `-1` into the current `errno`.
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)* ) ) => {{
        // SAFETY: the caller passes arguments valid for this libc function; see each call site.
        #[allow(unused_unsafe)]
        let res = unsafe { libc::$fn($($arg, )*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Set or clear `O_NONBLOCK` on `fd`. Returns whether it was set before.
pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<bool> {
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    let was = flags & libc::O_NONBLOCK != 0;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    if new != flags {
        syscall!(fcntl(fd, libc::F_SETFL, new))?;
    }
    Ok(was)
}

/// What kind of file a descriptor refers to, as far as polling is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// Regular files and block devices: epoll refuses them, they are always readable.
    Regular,
    /// Pipes, sockets, ttys, character devices: pollable.
    Pollable,
}

/// Classify `fd` with `fstat`.
pub fn fd_kind(fd: RawFd) -> io::Result<FdKind> {
    // SAFETY: an all-zero `stat` is a valid value for the out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `stat` for the duration of the call.
    syscall!(fstat(fd, &mut st))?;
    let fmt = st.st_mode & libc::S_IFMT;
    Ok(
        if fmt == libc::S_IFREG || fmt == libc::S_IFBLK || fmt == libc::S_IFDIR {
            FdKind::Regular
        } else {
            FdKind::Pollable
        },
    )
}

/// Grow a pipe's kernel buffer to `size` bytes (Linux `F_SETPIPE_SZ`); best effort, returns
/// the new size. Fewer, larger reads cost far fewer context switches than 64 KiB ones.
pub fn grow_pipe(fd: RawFd, size: usize) -> io::Result<usize> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    syscall!(fcntl(fd, libc::F_SETPIPE_SZ, size)).map(|n| n as usize)
}

/// Send `sig` to `pid`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    syscall!(kill(pid, sig)).map(|_| ())
}

/// The local time now, broken down; `None` if the C library cannot convert it.
fn local_now() -> Option<libc::tm> {
    // SAFETY: `time(NULL)` has no preconditions.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero `tm` is a valid value for the out-parameter.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    ok.then_some(tm)
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn day_month(tm: &libc::tm) -> (&'static str, &'static str) {
    (
        DAYS.get(tm.tm_wday as usize).copied().unwrap_or("???"),
        MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???"),
    )
}

/// The local time formatted as C's `ctime()` does, without the newline:
/// `Mon Nov 23 19:03:42 2026` (the date uWSGI puts in front of its own log lines).
pub fn ctime_now() -> String {
    let Some(tm) = local_now() else {
        return String::from("??? ??? ?? ??:??:?? ????");
    };
    let (day, month) = day_month(&tm);
    format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}",
        day,
        month,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

/// The local date for a mail `Date:` header (RFC 5322): `Mon, 23 Nov 2026 19:03:42 +0100`.
pub fn rfc5322_now() -> String {
    let Some(tm) = local_now() else {
        return String::from("Thu, 01 Jan 1970 00:00:00 +0000");
    };
    let (day, month) = day_month(&tm);
    let off = tm.tm_gmtoff / 60;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        day,
        tm.tm_mday,
        month,
        tm.tm_year + 1900,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

/// `uname(2)`: what airbrake notices report about the machine.
#[derive(Debug, Clone, Default)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub fn uname() -> Uname {
    // SAFETY: an all-zero `utsname` is a valid out-parameter.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a valid, writable utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return Uname::default();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Uname {
        sysname: field(&u.sysname),
        nodename: field(&u.nodename),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    }
}

/// The SMTP envelope of one libcurl easy handle: `MAIL FROM` and the `RCPT TO` list, which
/// the safe `curl` API does not expose. The recipient list lives as long as this value, so it
/// must outlive the transfer.
pub struct MailEnvelope {
    rcpts: *mut curl_sys::curl_slist,
}

// SAFETY: the list is owned by this value alone and only handed to libcurl by pointer.
unsafe impl Send for MailEnvelope {}

impl MailEnvelope {
    /// Set `MAIL FROM` and `RCPT TO` on `easy`. Strings with NUL bytes are refused.
    pub fn set(
        easy: &curl::easy::Easy,
        from: &str,
        rcpts: &[String],
    ) -> Result<MailEnvelope, String> {
        let from =
            std::ffi::CString::new(from).map_err(|_| "mail_from holds a NUL byte".to_string())?;
        let mut env = MailEnvelope {
            rcpts: std::ptr::null_mut(),
        };
        for r in rcpts {
            let c = std::ffi::CString::new(r.as_str())
                .map_err(|_| "mail_to holds a NUL byte".to_string())?;
            // SAFETY: `c` is a valid C string (copied by libcurl); `env.rcpts` is null or a list
            // this function built.
            let next = unsafe { curl_sys::curl_slist_append(env.rcpts, c.as_ptr()) };
            if next.is_null() {
                return Err("out of memory building the recipient list".into());
            }
            env.rcpts = next;
        }
        // SAFETY: `easy.raw()` is a live handle; libcurl copies string options; the list
        // pointer stays valid until `env` is dropped, which the caller keeps past the transfer.
        let rc = unsafe {
            let h = easy.raw();
            let a = curl_sys::curl_easy_setopt(h, curl_sys::CURLOPT_MAIL_FROM, from.as_ptr());
            if a != curl_sys::CURLE_OK {
                a
            } else {
                curl_sys::curl_easy_setopt(h, curl_sys::CURLOPT_MAIL_RCPT, env.rcpts)
            }
        };
        if rc != curl_sys::CURLE_OK {
            return Err(curl::Error::new(rc).to_string());
        }
        Ok(env)
    }
}

impl Drop for MailEnvelope {
    fn drop(&mut self) {
        if !self.rcpts.is_null() {
            // SAFETY: the list was built by curl_slist_append and is freed once.
            unsafe { curl_sys::curl_slist_free_all(self.rcpts) };
        }
    }
}

/// `CURLOPT_USE_SSL`: require TLS (STARTTLS for smtp://) when `require`, else use it if offered.
pub fn curl_use_ssl(easy: &curl::easy::Easy, require: bool) -> Result<(), curl::Error> {
    let level: libc::c_long = if require {
        curl_sys::CURLUSESSL_ALL as libc::c_long
    } else {
        curl_sys::CURLUSESSL_NONE as libc::c_long
    };
    // SAFETY: `easy.raw()` is a live handle and CURLOPT_USE_SSL takes a long.
    let rc = unsafe { curl_sys::curl_easy_setopt(easy.raw(), curl_sys::CURLOPT_USE_SSL, level) };
    if rc == curl_sys::CURLE_OK {
        Ok(())
    } else {
        Err(curl::Error::new(rc))
    }
}

/// One `write(2)` of `buf` to `fd`, retrying on `EINTR` and waiting with `poll` on `EAGAIN` (the
/// descriptor may be non-blocking because another process shares it). Returns bytes written (> 0).
pub fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    wait_fd(fd, libc::POLLOUT, -1)?;
                    continue;
                }
                _ => return Err(err),
            }
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        return Ok(n as usize);
    }
}

/// `read(2)` into `buf`, retrying on `EINTR`.
pub fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(n as usize);
    }
}

/// Wait until `fd` has one of `events` (`POLLIN`/`POLLOUT`), at most `timeout_ms` (-1: forever).
/// Returns whether it became ready.
pub fn wait_fd(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pfd` is one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(n > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctime_has_the_ctime_shape() {
        let s = ctime_now();
        assert_eq!(s.len(), 24, "{s:?}");
        assert_eq!(&s[3..4], " ");
        assert_eq!(&s[13..14], ":");
    }

    #[test]
    fn pipe_is_pollable_and_nonblocking_toggles() {
        let (r, _w) = std::io::pipe().unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(fd_kind(r.as_raw_fd()).unwrap(), FdKind::Pollable);
        assert!(!set_nonblocking(r.as_raw_fd(), true).unwrap());
        assert!(set_nonblocking(r.as_raw_fd(), false).unwrap());
    }
}

/// Whether `fd` is an open descriptor of this process.
pub fn fd_is_open(fd: RawFd) -> bool {
    syscall!(fcntl(fd, libc::F_GETFD)).is_ok()
}

/// What `/proc/self/fd/FD` points to (`pipe:[123]`, `anon_inode:[eventfd]`, a path).
pub fn fd_target(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Free room in the pipe whose write end is `fd`: its size minus the unread bytes.
pub fn pipe_free(fd: RawFd) -> io::Result<usize> {
    let size = syscall!(fcntl(fd, libc::F_GETPIPE_SZ))?;
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the valid pointer.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.max(0) as usize).saturating_sub(queued.max(0) as usize))
}

/// A listening socket's accept queue: how many connections wait, and its maximum (backlog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenQueue {
    pub queue: u32,
    pub max: u32,
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const TCP_LISTEN: u32 = 10;
const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_RQLEN: u32 = 0x10;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_RQLEN: u16 = 4;

/// Send one sock_diag dump request (`req` is the family-specific request after the netlink
/// header) and call `each` with the payload of every answer.
fn sock_diag_dump(req: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<()> {
    let fd = syscall!(socket(
        libc::AF_NETLINK,
        libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
        libc::NETLINK_SOCK_DIAG
    ))?;
    // SAFETY: `fd` was just opened and is owned here alone.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let mut msg = Vec::with_capacity(16 + req.len());
    msg.extend_from_slice(&((16 + req.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(req);
    // SAFETY: an all-zero sockaddr_nl addresses the kernel.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: `msg` and `addr` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            raw,
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(raw, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut part = &buf[..n as usize];
        while part.len() >= 16 {
            let len = u32::from_ne_bytes([part[0], part[1], part[2], part[3]]) as usize;
            let kind = u16::from_ne_bytes([part[4], part[5]]);
            if len < 16 || len > part.len() {
                return Err(io::Error::other("malformed netlink answer"));
            }
            match kind {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let errno = i32::from_ne_bytes([part[16], part[17], part[18], part[19]]);
                    return Err(io::Error::from_raw_os_error(-errno));
                }
                _ => each(&part[16..len]),
            }
            part = &part[((len + 3) & !3).min(part.len())..];
        }
        if n == 0 {
            return Ok(());
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// The accept queue of the listening TCP socket bound to `addr` (any process's), via
/// sock_diag. An unspecified address on either side matches any address with that port.
pub fn tcp_listen_queue(addr: std::net::SocketAddr) -> io::Result<Option<ListenQueue>> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // inet_diag_req_v2: family, protocol, ext, pad, states, then a zeroed inet_diag_sockid.
    let mut req = vec![family as u8, libc::IPPROTO_TCP as u8, 0, 0];
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&[0u8; 48]);
    let mut found = None;
    sock_diag_dump(&req, |m| {
        // inet_diag_msg: family, state, timer, retrans (4), sockid (48: sport, dport, src[16],
        // dst[16], if, cookie[8]), expires at 52, rqueue at 56, wqueue at 60, uid, inode.
        if m.len() < 72 {
            return;
        }
        let sport = u16::from_be_bytes([m[4], m[5]]);
        if sport != addr.port() {
            return;
        }
        let src: std::net::IpAddr = if m[0] as i32 == libc::AF_INET {
            std::net::Ipv4Addr::new(m[8], m[9], m[10], m[11]).into()
        } else {
            let mut o = [0u8; 16];
            o.copy_from_slice(&m[8..24]);
            std::net::Ipv6Addr::from(o).into()
        };
        if src == addr.ip() || src.is_unspecified() || addr.ip().is_unspecified() {
            found = Some(ListenQueue {
                queue: u32_at(m, 56),
                max: u32_at(m, 60),
            });
        }
    })?;
    Ok(found)
}

/// The accept queue of the listening unix stream socket bound to `path`, via sock_diag.
pub fn unix_listen_queue(path: &std::path::Path) -> io::Result<Option<ListenQueue>> {
    // unix_diag_req: family, protocol, pad[2], states, ino, show, cookie[2].
    let mut req = vec![libc::AF_UNIX as u8, 0, 0, 0];
    req.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN).to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]);
    let want = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec();
    let mut found = None;
    sock_diag_dump(&req, |m| {
        // unix_diag_msg (16 bytes), then attributes (len u16, type u16, payload, 4-aligned).
        let (mut name, mut q) = (None, None);
        let mut at = 16;
        while at + 4 <= m.len() {
            let len = u16::from_ne_bytes([m[at], m[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([m[at + 2], m[at + 3]]);
            if len < 4 || at + len > m.len() {
                break;
            }
            let payload = &m[at + 4..at + len];
            match kind {
                // The kernel may count the path's terminating NUL.
                UNIX_DIAG_NAME => {
                    let end = payload.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    name = Some(payload[..end].to_vec())
                }
                UNIX_DIAG_RQLEN => {
                    q = Some(ListenQueue {
                        queue: u32_at(payload, 0),
                        max: u32_at(payload, 4),
                    })
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
        if name.as_deref() == Some(want.as_slice()) {
            found = q;
        }
    })?;
    Ok(found)
}
pub mod strophe;
