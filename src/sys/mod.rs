//! Every libc and C-library call of logalarm: this module and its rooms.
//!
//! Role: thin, checked wrappers over the POSIX calls std does not expose (non-blocking flags,
//! `fstat` file type, pipe sizes, `kill`, `uname`, blocking-aware `read`/`write`/`poll`), and one
//! room per foreign interface: [`time`] (local dates), [`sock_diag`] (netlink listen queues),
//! [`curl`] (libcurl, loaded at run time), [`strophe`] (libstrophe, loaded at run time).
//! Invariant: every `unsafe` block carries a `// SAFETY:` comment and every wrapper returns
//! `io::Result` built from `errno`. The only `unsafe` outside `sys` is the AVX2 kernel of the
//! literal search (`litscan/avx2.rs`, and its one call in `litscan/mod.rs`), which is CPU
//! intrinsics, not system calls.
//! Rejected alternative: `nix` — a large dependency for a handful of calls.

use std::io;
use std::os::fd::RawFd;
use std::path::Path;

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
pub(crate) fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<bool> {
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
pub(crate) enum FdKind {
    /// Regular files and block devices: epoll refuses them, they are always readable.
    Regular,
    /// Pipes, sockets, ttys, character devices: pollable.
    Pollable,
}

/// Classify `fd` with `fstat`.
pub(crate) fn fd_kind(fd: RawFd) -> io::Result<FdKind> {
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

/// Whether `fd` is a pipe (FIFO) or a socket: a write to it can block for as long as its
/// reader does not read.
pub(crate) fn is_pipe_or_socket(fd: RawFd) -> bool {
    matches!(file_type(fd), Some(libc::S_IFIFO | libc::S_IFSOCK))
}

/// Whether `fd` is a pipe (FIFO).
pub(crate) fn is_fifo(fd: RawFd) -> bool {
    file_type(fd) == Some(libc::S_IFIFO)
}

/// The file type bits of `fd`'s mode (`S_IFIFO`, `S_IFREG`, ...), None when `fstat` fails.
fn file_type(fd: RawFd) -> Option<libc::mode_t> {
    // SAFETY: an all-zero `stat` is a valid value for the out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable `stat` for the duration of the call.
    syscall!(fstat(fd, &mut st)).ok()?;
    Some(st.st_mode & libc::S_IFMT)
}

/// Grow a pipe's kernel buffer to `size` bytes (Linux `F_SETPIPE_SZ`); best effort, returns
/// the new size. Fewer, larger reads cost far fewer context switches than 64 KiB ones. A pipe
/// already that large (someone else grew it) is left as it is.
pub(crate) fn grow_pipe(fd: RawFd, size: usize) -> io::Result<usize> {
    let now = syscall!(fcntl(fd, libc::F_GETPIPE_SZ))? as usize;
    if now >= size {
        return Ok(now);
    }
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    syscall!(fcntl(fd, libc::F_SETPIPE_SZ, size)).map(|n| n as usize)
}

/// Send `sig` to `pid`.
pub(crate) fn kill(pid: i32, sig: i32) -> io::Result<()> {
    syscall!(kill(pid, sig)).map(|_| ())
}

/// `uname(2)`: what airbrake notices report about the machine.
#[derive(Debug, Clone, Default)]
pub(crate) struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

pub(crate) fn uname() -> Uname {
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
/// `glob(3)` with `GLOB_MARK | GLOB_NOCHECK`, as uWSGI's `for-glob` calls it: the paths that
/// match (directories with a final `/`), or the pattern itself when none does.
pub(crate) fn glob(pattern: &str) -> io::Result<Vec<String>> {
    let c = std::ffi::CString::new(pattern)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the pattern"))?;
    // SAFETY: an all-zero glob_t is the documented initial state.
    let mut g: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated, `g` a valid glob_t; freed below on every path.
    let rc = unsafe {
        libc::glob(
            c.as_ptr(),
            libc::GLOB_MARK | libc::GLOB_NOCHECK,
            None,
            &mut g,
        )
    };
    let mut out = Vec::new();
    if rc == 0 {
        for i in 0..g.gl_pathc {
            // SAFETY: glob filled `gl_pathv` with `gl_pathc` NUL-terminated strings.
            let p = unsafe { *g.gl_pathv.add(i) };
            if !p.is_null() {
                // SAFETY: see above.
                let s = unsafe { std::ffi::CStr::from_ptr(p) };
                out.push(s.to_string_lossy().into_owned());
            }
        }
    }
    // SAFETY: `g` came from glob (or is all-zero, which globfree accepts).
    unsafe { libc::globfree(&mut g) };
    if rc != 0 {
        return Err(io::Error::other(format!("glob failed ({rc})")));
    }
    Ok(out)
}

/// The real user and group ids.
pub(crate) fn ids() -> (u32, u32) {
    // SAFETY: getuid and getgid take nothing and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Whether `meta` belongs to this process's effective user and nobody else may write it: a
/// file logalarm trusts (a rules-cache record, the tail state) must be.
pub(crate) fn private(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    meta.uid() == me && meta.mode() & 0o022 == 0
}

/// Replace `path` with `bytes` atomically: written to a new file beside it (mode 0600, no
/// symbolic link followed), then renamed over it. `tag` names the temporary file.
pub(crate) fn replace_file(path: &Path, tag: &str, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{tag}{}-{nanos}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The name of user `uid` (`getpwuid_r`), if it has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    // SAFETY: `getpwuid_r` with the entry, buffer and result pointers `entry_name` passes.
    entry_name(
        |e: &mut libc::passwd, buf, len, found| unsafe {
            libc::getpwuid_r(uid, e, buf, len, found)
        },
        |e| e.pw_name,
    )
}

/// The name of group `gid` (`getgrgid_r`), if it has one.
pub(crate) fn group_name(gid: u32) -> Option<String> {
    // SAFETY: `getgrgid_r` with the entry, buffer and result pointers `entry_name` passes.
    entry_name(
        |e: &mut libc::group, buf, len, found| unsafe { libc::getgrgid_r(gid, e, buf, len, found) },
        |e| e.gr_name,
    )
}

/// The name field of a passwd or group entry looked up by `lookup` (a `get*_r` call given the
/// entry, a buffer, its length and the result pointer), if found.
fn entry_name<T>(
    lookup: impl FnOnce(&mut T, *mut libc::c_char, usize, &mut *mut T) -> libc::c_int,
    name: impl Fn(&T) -> *mut libc::c_char,
) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd or group struct is a valid out-parameter.
    let mut entry: T = unsafe { std::mem::zeroed() };
    let mut found: *mut T = std::ptr::null_mut();
    let rc = lookup(&mut entry, buf.as_mut_ptr(), buf.len(), &mut found);
    let field = name(&entry);
    if rc != 0 || found.is_null() || field.is_null() {
        return None;
    }
    // SAFETY: on success the name points to a NUL-terminated string inside `buf`.
    Some(
        unsafe { std::ffi::CStr::from_ptr(field) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// One `write(2)` of `buf` to `fd`, retrying on `EINTR`. Returns bytes written (> 0); a
/// non-blocking descriptor without room is `WouldBlock` (the caller decides how long to wait).
pub(crate) fn write_fd(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is a valid readable slice of `buf.len()` bytes.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        return Ok(n as usize);
    }
}

/// `read(2)` into `buf`, retrying on `EINTR`.
pub(crate) fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
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
pub(crate) fn wait_fd(fd: RawFd, events: libc::c_short, timeout_ms: i32) -> io::Result<bool> {
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

/// Wait until `fd` is readable (or at its end) or `stop` is, at most `timeout_ms` (-1: for
/// ever, 0: not at all). `Some(false)` when `stop` is (checked first: once asked to stop,
/// nothing more is read), `None` when neither became ready in time.
pub(crate) fn readable_unless(fd: RawFd, stop: RawFd, timeout_ms: i32) -> io::Result<Option<bool>> {
    let mut pfds = [
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `pfds` is an array of two valid pollfds.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), 2, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            return Ok(None);
        }
        return Ok(Some(pfds[0].revents == 0));
    }
}

/// Run `f` with the process's umask set to `mask`, then restore it. For files that must never
/// exist with wider permissions (sockets: there is no fchmod before bind). Start-up only: the
/// umask is process-wide.
pub(crate) fn with_umask<T>(mask: libc::mode_t, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask has no preconditions and cannot fail.
    let old = unsafe { libc::umask(mask) };
    let r = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r
}

/// Make the calling thread give way to the process's other threads (nice 19: on Linux the
/// nice value is per thread). Best effort: an error leaves it as it was.
pub(crate) fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions; setpriority on the caller's own thread id changes
    // only its nice value.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

/// The CPU the calling thread runs on now (`sched_getcpu`), None where it cannot be told.
pub(crate) fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    usize::try_from(unsafe { libc::sched_getcpu() }).ok()
}

/// Keep the calling thread off `cpu`: its affinity becomes what it was without `cpu`. Best
/// effort: nothing changes when that would leave no CPU or a call fails. For a helper thread
/// made to run beside its parent, which a freshly woken process's scheduler may otherwise keep
/// queued on the parent's CPU while another one idles.
pub(crate) fn avoid_cpu(cpu: usize) {
    // SAFETY: an all-zero `cpu_set_t` is an empty set, a valid value for the out-parameter.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid, writable `cpu_set_t` of `size` bytes; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0
        || cpu >= libc::CPU_SETSIZE as usize
    {
        return;
    }
    // SAFETY: `cpu` is below CPU_SETSIZE (checked above), within `set`.
    if !unsafe { libc::CPU_ISSET(cpu, &set) } {
        return;
    }
    // SAFETY: as above.
    unsafe { libc::CPU_CLR(cpu, &mut set) };
    // SAFETY: `set` is a valid `cpu_set_t`.
    if unsafe { libc::CPU_COUNT(&set) } == 0 {
        return;
    }
    // SAFETY: `set` is a valid `cpu_set_t` of `size` bytes; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size, &set) };
}

/// This thread's CPU affinity, to be given back later with [`set_affinity`].
pub(crate) fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero `cpu_set_t` is an empty set, a valid value for the out-parameter.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid, writable `cpu_set_t` of `size` bytes; pid 0 is this thread.
    (unsafe { libc::sched_getaffinity(0, size, &mut set) } == 0).then_some(set)
}

/// Give this thread the affinity `set` (best effort).
pub(crate) fn set_affinity(set: &libc::cpu_set_t) {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a valid `cpu_set_t` of `size` bytes; pid 0 is this thread.
    unsafe { libc::sched_setaffinity(0, size, set) };
}

/// Make the process non-dumpable (`PR_SET_DUMPABLE` 0): no core file, no ptrace or
/// `/proc/PID/mem` by its own user. For a process holding secrets in memory.
pub(crate) fn set_not_dumpable() -> io::Result<()> {
    syscall!(prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong)).map(|_| ())
}

/// Whether `fd` is an open descriptor of this process.
pub(crate) fn fd_is_open(fd: RawFd) -> bool {
    syscall!(fcntl(fd, libc::F_GETFD)).is_ok()
}

/// What `/proc/self/fd/FD` points to (`pipe:[123]`, `anon_inode:[eventfd]`, a path).
pub(crate) fn fd_target(fd: RawFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Free room in the pipe whose write end is `fd`: its size minus the unread bytes.
pub(crate) fn pipe_free(fd: RawFd) -> io::Result<usize> {
    let size = syscall!(fcntl(fd, libc::F_GETPIPE_SZ))?;
    Ok((size.max(0) as usize).saturating_sub(queued(fd)?))
}

/// The bytes waiting unread in the pipe `fd` (either end): `FIONREAD`.
pub(crate) fn queued(fd: RawFd) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the valid pointer.
    if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(queued.max(0) as usize)
}

/// CPU time this thread has used, in nanoseconds (0 if the clock cannot be read).
pub(crate) fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec.max(0) as u64)
}

/// Bytes that start as zeroes, for a large buffer: an anonymous private mapping, whose pages
/// become resident only when written (a heap block when small or when the mapping fails).
// PERF: a 1 MiB read buffer zeroed by the allocator was ~256 page faults of ~3 µs on this VM
// before the first line out (PERF.md "thirty-first run"), and memory a quiet input never used.
// The store is private: a mapping is made only by `new` (a pointer from elsewhere would make
// `deref` unsound).
pub(crate) struct ZeroedBytes(Store);

enum Store {
    /// An anonymous mapping of this many bytes (more than zero).
    Mapped(std::ptr::NonNull<u8>, usize),
    /// A heap block.
    Heap(Box<[u8]>),
}

/// Smaller buffers come from the heap.
const MAPPED_MIN: usize = 256 * 1024;

impl ZeroedBytes {
    /// `len` zero bytes (at least one).
    pub(crate) fn new(len: usize) -> ZeroedBytes {
        let len = len.max(1);
        if len >= MAPPED_MIN {
            // SAFETY: a fresh anonymous private mapping of `len` bytes, at an address the
            // kernel chooses: no existing memory is touched.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if let Some(p) = (p != libc::MAP_FAILED)
                .then(|| std::ptr::NonNull::new(p.cast::<u8>()))
                .flatten()
            {
                return ZeroedBytes(Store::Mapped(p, len));
            }
        }
        ZeroedBytes(Store::Heap(vec![0; len].into_boxed_slice()))
    }
}

impl std::ops::Deref for ZeroedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            // SAFETY: the mapping is `len` readable bytes, initialised (zero or written since),
            // owned by `self` and unmapped only by its drop.
            Store::Mapped(p, len) => unsafe { std::slice::from_raw_parts(p.as_ptr(), *len) },
            Store::Heap(b) => b,
        }
    }
}

impl std::ops::DerefMut for ZeroedBytes {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
            Store::Mapped(p, len) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), *len) },
            Store::Heap(b) => b,
        }
    }
}

impl Drop for ZeroedBytes {
    fn drop(&mut self) {
        if let Store::Mapped(p, len) = &self.0 {
            // SAFETY: the mapping made in `new`, of `len` bytes, unmapped once; no reference
            // to it outlives `self`.
            unsafe { libc::munmap(p.as_ptr().cast(), *len) };
        }
    }
}

// SAFETY: `ZeroedBytes` owns its bytes alone, as a `Box<[u8]>` does.
unsafe impl Send for ZeroedBytes {}
// SAFETY: shared references only read, as through a `&Box<[u8]>`.
unsafe impl Sync for ZeroedBytes {}

impl std::fmt::Debug for ZeroedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZeroedBytes({} bytes)", self.len())
    }
}

pub(crate) mod curl;
pub(crate) mod sock_diag;
pub(crate) mod strophe;
pub(crate) mod time;

/// Ask the kernel to count datagrams it drops on `fd` for want of receive buffer room
/// (`SO_RXQ_OVFL`): [`recv_from`] then reports the running count.
pub(crate) fn count_drops(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    syscall!(setsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RXQ_OVFL,
        (&on as *const libc::c_int).cast(),
        std::mem::size_of::<libc::c_int>() as libc::socklen_t
    ))
    .map(|_| ())
}

/// One datagram from `fd` into `buf`: its length, its sender (if IPv4/IPv6), and the kernel's
/// count of datagrams dropped on this socket so far (if [`count_drops`] is on).
pub(crate) fn recv_from(
    fd: RawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<std::net::SocketAddr>, Option<u32>)> {
    // SAFETY: all-zero sockaddr_storage/msghdr are valid initial values.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one u32 control message, aligned.
    let mut control = [0u64; 8];
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // (`as _`: its type is size_t on glibc, socklen_t on musl; 64 bytes fit either.)
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points to live buffers of the stated sizes.
    let n = syscall!(recvmsg(fd, &mut msg, 0))? as usize;
    let mut dropped = None;
    // SAFETY: CMSG_* walk the control buffer the kernel filled, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                dropped = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>()));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let sender = match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a =
                unsafe { *(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    };
    Ok((n, sender, dropped))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPUs the calling thread may run on.
    fn allowed() -> Vec<usize> {
        // SAFETY: as in `avoid_cpu`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: as in `avoid_cpu`.
        assert_eq!(unsafe { libc::sched_getaffinity(0, size, &mut set) }, 0);
        // SAFETY: every index is below CPU_SETSIZE.
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect()
    }

    #[test]
    fn a_thread_avoiding_a_cpu_keeps_the_others_and_never_none() {
        std::thread::scope(|s| {
            s.spawn(|| {
                let before = allowed();
                let Some(&first) = before.first() else {
                    panic!("no CPU allowed")
                };
                avoid_cpu(first);
                let after = allowed();
                if before.len() > 1 {
                    assert_eq!(after, before[1..], "{first} avoided");
                    assert_ne!(current_cpu(), Some(first));
                } else {
                    assert_eq!(after, before, "the only CPU is kept");
                }
                // Avoiding the last one left changes nothing; nor does a CPU out of range.
                for &c in &after {
                    avoid_cpu(c);
                }
                assert_eq!(allowed().len(), 1);
                avoid_cpu(usize::MAX);
                assert_eq!(allowed().len(), 1);
            });
        });
        assert!(current_cpu().is_some());
    }

    #[test]
    fn zeroed_bytes_are_zero_writable_and_mapped_only_when_large() {
        for len in [0, 1, 4096, MAPPED_MIN - 1, MAPPED_MIN, 3 * MAPPED_MIN + 5] {
            let mut b = ZeroedBytes::new(len);
            assert_eq!(b.len(), len.max(1));
            let mapped = matches!(b.0, Store::Mapped(..));
            assert_eq!(mapped, len >= MAPPED_MIN, "{len}");
            assert!(b.iter().all(|&x| x == 0), "{len}");
            let last = b.len() - 1;
            b[last] = 7;
            b[0] = 9;
            b.copy_within(0..1, last / 2);
            assert_eq!(
                (b[0], b[last / 2], b[last]),
                (9, 9, if last == 0 { 9 } else { 7 })
            );
            assert_eq!(
                format!("{b:?}"),
                format!("ZeroedBytes({} bytes)", len.max(1))
            );
        }
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
