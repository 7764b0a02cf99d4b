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

/// The local time formatted as C's `ctime()` does, without the newline:
/// `Mon Nov 23 19:03:42 2026` (the date uWSGI puts in front of its own log lines).
pub fn ctime_now() -> String {
    // SAFETY: `time(NULL)` has no preconditions.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero `tm` is a valid value for the out-parameter.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is thread-safe.
    let ok = unsafe { !libc::localtime_r(&now, &mut tm).is_null() };
    if !ok {
        return String::from("??? ??? ?? ??:??:?? ????");
    }
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day = DAYS.get(tm.tm_wday as usize).copied().unwrap_or("???");
    let month = MONTHS.get(tm.tm_mon as usize).copied().unwrap_or("???");
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
