//! libstrophe (the XMPP client library uWSGI's peers use), loaded at run time.
//!
//! Role: the few libstrophe calls an `xmpp:` alarm needs, behind a safe [`Client`]. The library
//! is opened with `dlopen("libstrophe.so.0")` when the first `xmpp:` alarm is configured, so
//! logalarm builds and runs without it and a missing library is one start-up error naming the
//! package. Invariants: every `unsafe` block carries a SAFETY comment; a `Client` and its
//! callbacks live on one thread (libstrophe is not thread-safe per context); libstrophe's
//! warnings and errors are kept (never its debug output, which may show the login exchange).
//! Rejected alternative: linking at build time — `cargo run` on a machine without
//! libstrophe-dev would not build at all.

/// Why libstrophe could not be loaded, set up or connected (its own words where it has some).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub(crate) struct StropheError(String);

impl From<String> for StropheError {
    fn from(why: String) -> StropheError {
        StropheError(why)
    }
}

impl From<&str> for StropheError {
    fn from(why: &str) -> StropheError {
        StropheError(why.to_string())
    }
}

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_long, c_ulong, c_void, CStr, CString};
use std::sync::OnceLock;

type Ctx = c_void;
type Conn = c_void;
type ConnHandler = extern "C" fn(*mut Conn, c_int, c_int, *mut c_void, *mut c_void);
type CertFail = extern "C" fn(*const c_void, *const c_char) -> c_int;
type LogHandler = extern "C" fn(*mut c_void, c_int, *const c_char, *const c_char);
type ConnectClient =
    extern "C" fn(*mut Conn, *const c_char, u16, ConnHandler, *mut c_void) -> c_int;

#[repr(C)]
struct Log {
    handler: LogHandler,
    userdata: *mut c_void,
}

const FLAG_MANDATORY_TLS: c_long = 1 << 1;
const FLAG_TRUST_TLS: c_long = 1 << 3;
const EVENT_CONNECT: c_int = 0;
const LEVEL_WARN: c_int = 2;

struct Lib {
    initialize: extern "C" fn(),
    ctx_new: extern "C" fn(*const c_void, *const Log) -> *mut Ctx,
    ctx_free: extern "C" fn(*mut Ctx),
    conn_new: extern "C" fn(*mut Ctx) -> *mut Conn,
    conn_release: extern "C" fn(*mut Conn) -> c_int,
    set_flags: extern "C" fn(*mut Conn, c_long) -> c_int,
    set_jid: extern "C" fn(*mut Conn, *const c_char),
    set_pass: extern "C" fn(*mut Conn, *const c_char),
    set_cafile: extern "C" fn(*mut Conn, *const c_char),
    set_certfail: extern "C" fn(*mut Conn, CertFail),
    connect_client: extern "C" fn(*mut Conn, *const c_char, u16, ConnHandler, *mut c_void) -> c_int,
    run_once: extern "C" fn(*mut Ctx, c_ulong),
    send_raw: extern "C" fn(*mut Conn, *const c_char, usize),
    disconnect: extern "C" fn(*mut Conn),
}

// SAFETY: the table holds plain function pointers into a library that is never unloaded.
unsafe impl Send for Lib {}
// SAFETY: as above; the pointers are only read.
unsafe impl Sync for Lib {}

fn load() -> Result<Lib, StropheError> {
    if cfg!(target_feature = "crt-static") {
        // A static binary (scripts/static-musl.sh) has no dynamic loader to open it with.
        return Err(StropheError::from(
            "libstrophe is loaded at run time, which this static binary cannot do: use the \
             dynamically linked build (the .deb, or cargo install) for xmpp: alarms",
        ));
    }
    let name = c"libstrophe.so.0";
    // SAFETY: dlopen with a valid C string; the handle is kept for the process's life.
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        return Err(StropheError::from(
            "libstrophe is not installed (Debian: apt-get install libstrophe0)",
        ));
    }
    macro_rules! sym {
        ($name:literal as $t:ty) => {{
            let n = CString::new($name).map_err(|e| e.to_string())?;
            // SAFETY: `h` is a live handle and `n` a valid C string.
            let p = unsafe { libc::dlsym(h, n.as_ptr()) };
            if p.is_null() {
                return Err(StropheError::from(format!(
                    "libstrophe lacks {} (version 0.12 or newer needed)",
                    $name
                )));
            }
            // SAFETY: the symbol is the libstrophe function of that name, whose C signature
            // (strophe.h, 0.12) matches the field's type.
            unsafe { std::mem::transmute::<*mut c_void, $t>(p) }
        }};
    }
    Ok(Lib {
        initialize: sym!("xmpp_initialize" as extern "C" fn()),
        ctx_new: sym!("xmpp_ctx_new" as extern "C" fn(*const c_void, *const Log) -> *mut Ctx),
        ctx_free: sym!("xmpp_ctx_free" as extern "C" fn(*mut Ctx)),
        conn_new: sym!("xmpp_conn_new" as extern "C" fn(*mut Ctx) -> *mut Conn),
        conn_release: sym!("xmpp_conn_release" as extern "C" fn(*mut Conn) -> c_int),
        set_flags: sym!("xmpp_conn_set_flags" as extern "C" fn(*mut Conn, c_long) -> c_int),
        set_jid: sym!("xmpp_conn_set_jid" as extern "C" fn(*mut Conn, *const c_char)),
        set_pass: sym!("xmpp_conn_set_pass" as extern "C" fn(*mut Conn, *const c_char)),
        set_cafile: sym!("xmpp_conn_set_cafile" as extern "C" fn(*mut Conn, *const c_char)),
        set_certfail: sym!("xmpp_conn_set_certfail_handler" as extern "C" fn(*mut Conn, CertFail)),
        connect_client: sym!("xmpp_connect_client" as ConnectClient),
        run_once: sym!("xmpp_run_once" as extern "C" fn(*mut Ctx, c_ulong)),
        send_raw: sym!("xmpp_send_raw" as extern "C" fn(*mut Conn, *const c_char, usize)),
        disconnect: sym!("xmpp_disconnect" as extern "C" fn(*mut Conn)),
    })
}

fn lib() -> Result<&'static Lib, StropheError> {
    static LIB: OnceLock<Result<Lib, StropheError>> = OnceLock::new();
    LIB.get_or_init(|| {
        let l = load()?;
        (l.initialize)();
        Ok(l)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether libstrophe can be loaded (a start-up check).
pub(crate) fn available() -> Result<(), StropheError> {
    lib().map(|_| ())
}

thread_local! {
    /// libstrophe's latest warning or error on this thread, and a certificate failure.
    static LAST: RefCell<(Option<String>, Option<String>)> = const { RefCell::new((None, None)) };
}

extern "C" fn log_handler(_: *mut c_void, level: c_int, area: *const c_char, msg: *const c_char) {
    if level < LEVEL_WARN || msg.is_null() {
        return;
    }
    // SAFETY: libstrophe passes NUL-terminated strings valid for the call.
    let (area, msg) = unsafe {
        (
            if area.is_null() {
                ""
            } else {
                CStr::from_ptr(area).to_str().unwrap_or("")
            },
            CStr::from_ptr(msg).to_string_lossy().into_owned(),
        )
    };
    LAST.with(|l| l.borrow_mut().0 = Some(format!("{area}: {msg}")));
}

extern "C" fn certfail(_: *const c_void, err: *const c_char) -> c_int {
    let why = if err.is_null() {
        "verification failed".to_string()
    } else {
        // SAFETY: a NUL-terminated string valid for the call.
        unsafe { CStr::from_ptr(err).to_string_lossy().into_owned() }
    };
    LAST.with(|l| l.borrow_mut().1 = Some(why));
    0
}

/// What happened on the connection since the last look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Online,
    /// Disconnected or failed to connect: the reason (libstrophe's last error, or the
    /// certificate problem).
    Offline {
        reason: String,
        bad_cert: bool,
    },
}

struct State {
    events: Vec<Event>,
    online: bool,
}

extern "C" fn conn_handler(
    conn: *mut Conn,
    event: c_int,
    error: c_int,
    _stream_error: *mut c_void,
    userdata: *mut c_void,
) {
    // SAFETY: `userdata` is the `State` box of the `Client` running this context, alive for
    // as long as the connection exists, on this thread only.
    let state = unsafe { &mut *(userdata as *mut State) };
    if event == EVENT_CONNECT {
        state.online = true;
        state.events.push(Event::Online);
        if let Ok(l) = lib() {
            let p = "<presence/>";
            (l.send_raw)(conn, p.as_ptr().cast(), p.len());
        }
        return;
    }
    state.online = false;
    let (log, cert) = LAST.with(|l| {
        let mut l = l.borrow_mut();
        (l.0.take(), l.1.take())
    });
    let reason = match (&cert, log, error) {
        (Some(c), _, _) => format!("the server's certificate is not trusted: {c}"),
        (None, Some(l), _) => l,
        (None, None, 0) => "disconnected".to_string(),
        (None, None, e) => std::io::Error::from_raw_os_error(e).to_string(),
    };
    state.events.push(Event::Offline {
        reason,
        bad_cert: cert.is_some(),
    });
}

/// One XMPP client connection (one thread).
pub(crate) struct Client {
    lib: &'static Lib,
    ctx: *mut Ctx,
    conn: *mut Conn,
    state: Box<State>,
    _log: Box<Log>,
}

impl Client {
    pub(crate) fn new(
        jid: &str,
        pass: &str,
        insecure: bool,
        cafile: Option<&str>,
    ) -> Result<Client, StropheError> {
        let lib = lib()?;
        let log = Box::new(Log {
            handler: log_handler,
            userdata: std::ptr::null_mut(),
        });
        let jid = CString::new(jid).map_err(|_| "the JID holds a NUL byte".to_string())?;
        let pass = CString::new(pass).map_err(|_| "the password holds a NUL byte".to_string())?;
        let ctx = (lib.ctx_new)(std::ptr::null(), &*log);
        if ctx.is_null() {
            return Err(StropheError::from("libstrophe could not create a context"));
        }
        let conn = (lib.conn_new)(ctx);
        if conn.is_null() {
            (lib.ctx_free)(ctx);
            return Err(StropheError::from(
                "libstrophe could not create a connection",
            ));
        }
        (lib.set_jid)(conn, jid.as_ptr());
        (lib.set_pass)(conn, pass.as_ptr());
        // TLS is required (a server without STARTTLS is refused: the password must never
        // cross in clear); with `ssl_insecure` the certificate is not checked and a server
        // without TLS is accepted.
        let _ = (lib.set_flags)(
            conn,
            if insecure {
                FLAG_TRUST_TLS
            } else {
                FLAG_MANDATORY_TLS
            },
        );
        if let Some(f) = cafile.and_then(|f| CString::new(f).ok()) {
            (lib.set_cafile)(conn, f.as_ptr());
        }
        (lib.set_certfail)(conn, certfail);
        Ok(Client {
            lib,
            ctx,
            conn,
            state: Box::new(State {
                events: Vec::new(),
                online: false,
            }),
            _log: log,
        })
    }

    /// Start connecting (to `host:port` instead of the JID's domain when given).
    pub(crate) fn connect(&mut self, host: Option<&str>, port: u16) -> Result<(), StropheError> {
        let host = host.and_then(|h| CString::new(h).ok());
        let rc = (self.lib.connect_client)(
            self.conn,
            host.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
            port,
            conn_handler,
            (&mut *self.state as *mut State).cast(),
        );
        if rc == 0 {
            Ok(())
        } else {
            let why = LAST.with(|l| l.borrow_mut().0.take());
            Err(StropheError::from(why.unwrap_or_else(|| {
                format!("cannot connect (libstrophe error {rc})")
            })))
        }
    }

    /// Run the event loop for up to `ms` milliseconds; return what happened.
    pub(crate) fn run(&mut self, ms: u64) -> Vec<Event> {
        (self.lib.run_once)(self.ctx, ms as c_ulong);
        std::mem::take(&mut self.state.events)
    }

    pub(crate) fn online(&self) -> bool {
        self.state.online
    }

    /// Send raw XML (a whole stanza).
    pub(crate) fn send(&mut self, xml: &str) {
        (self.lib.send_raw)(self.conn, xml.as_ptr().cast(), xml.len());
    }

    pub(crate) fn disconnect(&mut self) {
        (self.lib.disconnect)(self.conn);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        (self.lib.conn_release)(self.conn);
        (self.lib.ctx_free)(self.ctx);
    }
}
